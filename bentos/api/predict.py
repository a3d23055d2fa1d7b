"""``POST /predict``: one endpoint for every served model, single input or batch."""

from __future__ import annotations

import time

from fastapi import APIRouter, Response

from bentos.api.deps import GatewayDep
from bentos.api.schemas import ModelInfo, PredictRequest, PredictResponse

router = APIRouter(tags=["inference"])


@router.post("/predict", response_model=PredictResponse)
async def predict(body: PredictRequest, gateway: GatewayDep, response: Response) -> PredictResponse:
    started = time.perf_counter()
    model = gateway.resolve(body.model_name)
    items, is_batch = gateway.schemas[model.name].validate(body.inputs, gateway.settings.max_inputs_per_request)
    batching = gateway.settings.enable_batching if body.enable_batching is None else body.enable_batching
    results = await gateway.infer(model.name, items, batching=batching)
    response.headers["X-Model-Version"] = model.registry_version
    response.headers["X-MLflow-Run-Id"] = model.mlflow_run_id
    return PredictResponse(
        result=results if is_batch else results[0],
        processing_time=round(time.perf_counter() - started, 6),
        batch_size=len(items),
        model_info=ModelInfo(device=gateway.device, **model.info()),
    )
