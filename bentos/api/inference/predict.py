"""Inference: ``POST /predict`` (single or batch), ``POST /predict/batch`` and ``POST /{model_name}/predict``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response

from bentos.api.http.backends import SettingsDep
from bentos.api.http.timeutil import now
from bentos.api.inference.deps import DeviceDep, ModelsDep, WorkerDep
from bentos.api.inference.schemas import (
    BatchPredictRequest,
    ModelInfo,
    ModelPredictRequest,
    PredictOptions,
    PredictRequest,
    PredictResponse,
)
from bentos.clients import ModelRegistry, WorkerClient
from kiln.errors import InvalidInput
from kiln.settings import Settings

router = APIRouter(tags=["inference"])
# Included last, so the path parameter never shadows a fixed path of another router.
model_router = APIRouter(tags=["inference"])


@dataclass
class Predictor:
    """What a prediction needs."""

    models: ModelRegistry
    worker: WorkerClient
    settings: Settings
    device: str


async def predictor(models: ModelsDep, worker: WorkerDep, settings: SettingsDep, device: DeviceDep) -> Predictor:
    return Predictor(models, worker, settings, device)


PredictorDep = Annotated[Predictor, Depends(predictor)]


async def run_prediction(
    serving: Predictor, response: Response, model_name: str, inputs: Any, options: PredictOptions, force_batch: bool = False
) -> PredictResponse:
    started = time.perf_counter()
    model = serving.models.resolve(model_name)
    schema = serving.models.schema(model)
    limit = serving.settings.max_inputs_per_request
    if force_batch:
        if len(inputs) > limit:
            raise InvalidInput("inputs", f"a batch holds at most {limit} items, got {len(inputs)}")
        items, is_batch = [schema.validate_item(item, f"inputs[{i}]") for i, item in enumerate(inputs)], True
    else:
        items, is_batch = schema.validate(inputs, limit)
    batching = serving.settings.enable_batching if options.enable_batching is None else options.enable_batching
    results, variant = await serving.worker.infer_with_variant(
        model.name, items, batching=batching, priority=options.priority, timeout=options.timeout
    )
    response.headers["X-Model-Version"] = model.registry_version
    response.headers["X-Model-Variant"] = variant
    response.headers["X-MLflow-Run-Id"] = model.mlflow_run_id
    response.headers["X-Dagster-Run-Id"] = model.dagster_run_id
    return PredictResponse(
        result=results if is_batch else results[0],
        processing_time=round(time.perf_counter() - started, 6),
        batch_size=len(items),
        model_info=ModelInfo(device=serving.device, variant=variant, **model.info()),
        timestamp=now(),
    )


@router.post("/predict", response_model=PredictResponse, summary="Predict with any served model (one input or a batch)")
async def predict(body: PredictRequest, serving: PredictorDep, response: Response) -> PredictResponse:
    return await run_prediction(serving, response, body.model_name, body.inputs, body)


@router.post("/predict/batch", response_model=PredictResponse, summary="Predict a list of inputs; one result each")
async def predict_batch(body: BatchPredictRequest, serving: PredictorDep, response: Response) -> PredictResponse:
    return await run_prediction(serving, response, body.model_name, body.inputs, body, force_batch=True)


@model_router.post("/{model_name}/predict", response_model=PredictResponse, summary="Predict with the model named in the path")
async def predict_with_model(model_name: str, body: ModelPredictRequest, serving: PredictorDep, response: Response) -> PredictResponse:
    return await run_prediction(serving, response, model_name, body.inputs, body)
