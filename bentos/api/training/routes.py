"""POST /api/training/start, GET /api/training/status/{task_id}, POST /api/training/stop/{task_id}."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from bentos.api.http.identity import CallerDep
from bentos.api.training.deps import TrainingDep
from bentos.api.training.schemas import TrainingStarted, TrainingStatus, TrainingStopped
from kiln.training.requests import TrainingParameters

router = APIRouter(prefix="/api/training", tags=["training (seed 001)"])
ERRORS = {404: {"description": "Unknown base model (the stored ones are listed) or unknown task"},
          409: {"description": "The training has already finished"}}


@router.post("/start", response_model=TrainingStarted, status_code=202, responses=ERRORS,
             summary="Start a training (a task running the Dagster job user_training)")
async def start(body: TrainingParameters, training: TrainingDep, caller: CallerDep) -> dict:
    return await run_in_threadpool(training.start, caller.owner_id, body.model_dump(exclude_none=True))


@router.get("/status/{task_id}", response_model=TrainingStatus, responses=ERRORS,
            summary="Progress of a training: step, epoch, loss, learning rate, validation metrics, runs")
async def status(task_id: str, training: TrainingDep, caller: CallerDep) -> dict:
    return await run_in_threadpool(training.status, task_id, caller.owner_id, caller.see_all)


@router.post("/stop/{task_id}", response_model=TrainingStopped, responses=ERRORS,
             summary="Stop a training: its Dagster run is terminated, the last checkpoint kept")
async def stop(task_id: str, training: TrainingDep, caller: CallerDep) -> dict:
    return await run_in_threadpool(training.stop, task_id, caller.owner_id, caller.see_all)
