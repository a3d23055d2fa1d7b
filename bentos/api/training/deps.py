"""The training surface's one dependency: the training service over the task service."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from bentos.api.tasks.deps import TasksDep
from kiln.training.service import TrainingService


async def training_service(tasks: TasksDep) -> TrainingService:
    return TrainingService(tasks)


TrainingDep = Annotated[TrainingService, Depends(training_service)]
