"""``POST /api/image-recognition/classify`` and ``/detect`` (multipart ``image``, optional ``model``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile

from bentos.api.http.backends import SettingsDep
from bentos.api.vision.client import read_image
from bentos.api.vision.deps import VisionDep
from bentos.api.vision.schemas import ClassifyResponse, DetectResponse
from kiln.errors import InvalidInput

router = APIRouter(prefix="/api/image-recognition", tags=["image recognition (seed 001)"])
UPLOAD_ERRORS = {400: {"description": "Corrupt image"}, 413: {"description": "Too many bytes or pixels"},
                 415: {"description": "Not an image format Kiln reads"}, 503: {"description": "The model is not built yet"}}

ImageFile = Annotated[UploadFile | None, File(description="The image (JPEG, PNG, WebP, BMP, GIF, TIFF)")]
ModelName = Annotated[str | None, Form(max_length=64, description="A catalog model; default KILN_VISION_CLASSIFIER / _DETECTOR")]


@router.post("/classify", response_model=ClassifyResponse, responses=UPLOAD_ERRORS,
             summary="Top-k ImageNet (or the model's own) labels of an image")
async def classify(
    vision: VisionDep, settings: SettingsDep, image: ImageFile = None, model: ModelName = None,
    top_k: Annotated[int, Form(ge=1, le=100, description="How many labels")] = 5,
) -> dict:
    upload = await read_image(image, settings)
    return await vision.run(model or settings.vision_classifier, "image-classification", upload.data, top_k=top_k)


@router.post("/detect", response_model=DetectResponse, responses=UPLOAD_ERRORS,
             summary="Objects in an image, with boxes [x, y, width, height] in pixels")
async def detect(
    vision: VisionDep, settings: SettingsDep, image: ImageFile = None, model: ModelName = None,
    threshold: Annotated[float, Form(ge=0, le=1, description="Lowest confidence answered")] = 0.5,
    labels: Annotated[str | None, Form(max_length=2000, description="Comma-separated labels to look for; default: the "
                                                                    "detector's defaults (opencv: person, face)")] = None,
) -> dict:
    wanted = [label.strip() for label in labels.split(",") if label.strip()] if labels else None
    if labels is not None and not wanted:
        raise InvalidInput("labels", "name at least one label, or leave the field out")
    upload = await read_image(image, settings)
    return await vision.run(model or settings.vision_detector, "object-detection", upload.data, threshold=threshold,
                            labels=wanted)
