"""The vision surface's dependencies: vision models in the model worker, and the registered faces."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from bentos.api.http.backends import SettingsDep, backend
from bentos.api.inference.deps import ModelsDep, WorkerDep
from bentos.api.vision.client import VisionModels
from kiln.vision.records import FaceRegistry

faces_backend = backend("faces")


async def vision_models(models: ModelsDep, worker: WorkerDep, settings: SettingsDep) -> VisionModels:
    return VisionModels(models, worker, settings)


VisionDep = Annotated[VisionModels, Depends(vision_models)]
FacesDep = Annotated[FaceRegistry, Depends(faces_backend)]
