"""The generation surface's dependencies: the workspace's generation models (shared with the task workers
of this process), the task service and the files store."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from bentos.api.http.backends import SettingsDep
from bentos.api.tasks.deps import FilesDep, TasksDep
from kiln.generation.models import GenerationModels


async def generation_models(settings: SettingsDep) -> GenerationModels:
    from kiln.catalog import load_catalog
    from kiln.errors import KilnError
    from kiln.generation.models import shared_models

    try:
        descriptions = {e.name: e.description for e in load_catalog(settings.catalog_file).models}
    except KilnError:  # no catalog in this workspace: models are still listed, without descriptions
        descriptions = {}
    return shared_models(settings.model_store_dir, descriptions)


ModelsDep = Annotated[GenerationModels, Depends(generation_models)]

__all__ = ["FilesDep", "ModelsDep", "TasksDep"]
