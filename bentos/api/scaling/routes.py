"""GET /ml/scaling/predictions, GET /ml/scaling/history, POST /ml/model/retrain."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from bentos.api.http.identity import CallerDep
from bentos.api.scaling.deps import ScalingDep
from bentos.api.scaling.schemas import History, Predictions, Retrain, RetrainStarted

router = APIRouter(prefix="/ml", tags=["ml-controller"])


@router.get("/scaling/predictions", response_model=Predictions,
            summary="Per served model: instances now and in the horizon, from the champion scaling predictor")
async def predictions(scaling: ScalingDep) -> dict:
    return await run_in_threadpool(scaling.predictions)


@router.get("/scaling/history", response_model=History,
            summary="Scaling decisions in the window (every trigger), and how often the predictions were right")
async def history(scaling: ScalingDep, hours: Annotated[int, Query(ge=1, le=168)] = 24) -> dict:
    return await run_in_threadpool(scaling.history, hours)


@router.post("/model/retrain", response_model=RetrainStarted, status_code=202,
             summary="Retrain the scaling predictor (a task running the Dagster asset scaling_predictor)")
async def retrain(body: Retrain, scaling: ScalingDep, caller: CallerDep) -> dict:
    return await run_in_threadpool(scaling.retrain, caller.owner_id, body.training_hours, body.force_retrain)
