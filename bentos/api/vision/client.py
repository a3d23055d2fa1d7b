"""What the vision routes share: reading an upload (limits checked from the header before any decoding),
and running one image through a vision model in the model worker's pool."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import UploadFile
from starlette.concurrency import run_in_threadpool

from bentos.clients import ModelRegistry, WorkerClient
from kiln.errors import InvalidInput
from kiln.settings import Settings
from kiln.vision.images import ImageLimits, b64encode, check_image

TASK_NAMES = {"image-classification": "an image classifier", "object-detection": "an object detector",
              "face-recognition": "a face model"}


@dataclass
class Upload:
    data: bytes
    format: str
    width: int
    height: int
    filename: str

    @property
    def content_type(self) -> str:
        return f"image/{self.format.lower()}"


async def read_image(upload: UploadFile | None, settings: Settings, field: str = "image") -> Upload:
    if upload is None:
        raise InvalidInput(field, "an image file is required (multipart/form-data field `image`)")
    limits = ImageLimits.from_settings(settings)
    try:
        data = await upload.read(limits.max_bytes + 1)
    finally:
        await upload.close()
    kind, width, height = await run_in_threadpool(check_image, data, limits, field)
    return Upload(data, kind, width, height, upload.filename or "image")


@dataclass
class VisionModels:
    """Vision models served by the model worker (loaded on demand, pooled, batched, unloaded when idle)."""

    models: ModelRegistry
    worker: WorkerClient
    settings: Settings

    def resolve(self, name: str, task: str) -> Any:
        model = self.models.resolve(name)  # 404 unknown, 503 in the catalog but not built yet
        if model.task != task:
            raise InvalidInput("model", f"'{name}' is a {model.task} model; this route needs {TASK_NAMES[task]}")
        return model

    async def run(self, name: str, task: str, image: bytes, **options: Any) -> dict[str, Any]:
        model = self.resolve(name, task)
        item = {"image": b64encode(image), **{k: v for k, v in options.items() if v is not None}}
        schema = self.models.schema(model)
        validated = schema.validate_item(item, "image")
        [result] = await self.worker.infer(model.name, [validated], batching=True, timeout=self.settings.vision_timeout_seconds)
        return {**result, "model": model.name}
