"""Inference on a session's model (seed 004's inference/execute): a generation model draws images with the
generation engine (kiln/generation) and answers them as base64 PNG; an inference engine takes ``inputs`` as
/predict does. Bad requests are 400 INVALID_PARAMETERS naming the field."""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass
from typing import Any

from kiln.device_models import InvalidParameters
from kiln.errors import InvalidInput, KilnError


class InferenceFailed(KilnError):
    code = "INFERENCE_FAILED"


@dataclass
class GenerationInputs:
    prompt: str
    negative_prompt: str | None = None
    width: int | None = None
    height: int | None = None
    steps: int = 20
    guidance_scale: float | None = None
    seed: int | None = None
    num_images: int = 1


def as_parameters(exc: InvalidInput, value: Any) -> InvalidParameters:
    field = {"width": "width", "height": "height", "prompt": "prompt", "negative_prompt": "negativePrompt",
             "model_id": "modelPath"}.get(exc.field, exc.field)
    return InvalidParameters(field, value, "supported by the model", f"Invalid {field}: {exc.message.split(': ', 1)[-1]}")


def generation_model(loaded_model: Any):
    """The generation engine's description of a stored model (sizes it makes, prompts it draws)."""
    from kiln.generation.models import describe_stored
    from kiln.store import StoredModel

    return describe_stored(StoredModel.read(loaded_model.path))


def check_generation(model: Any, request: GenerationInputs) -> tuple[int, int]:
    """(width, height) the model makes for the request; InvalidParameters for what it cannot do."""
    if not request.prompt.strip():
        raise InvalidParameters("prompt", request.prompt, "required", "Invalid prompt: prompt cannot be empty")
    described = generation_model(model)
    try:
        size = described.check_size(request.width, request.height)
        described.ground(request.prompt)
    except InvalidInput as exc:
        value = {"width": request.width, "height": request.height}.get(exc.field, request.prompt)
        raise as_parameters(exc, value) from None
    return size


def generate(runner: Any, model: Any, request: GenerationInputs) -> dict[str, Any]:
    """Images (base64 PNG) and metadata, from a loaded DigitsDiffusion or HubPipeline."""
    from kiln.generation.media import png_bytes, to_pil

    width, height = check_generation(model, request)
    seed = request.seed if request.seed is not None else random.randrange(2**32)
    seeds = [(seed + i) % 2**32 for i in range(request.num_images)]
    try:
        if model.model_type == "digits-diffusion":
            from kiln.generation.digits import ImageRequest

            guidance = request.guidance_scale if request.guidance_scale is not None else runner.default_guidance
            tensors = runner.images([ImageRequest(request.prompt, s, request.negative_prompt) for s in seeds],
                                    request.steps, guidance)
            pictures = [to_pil(t, width) for t in tensors]
            scheduler = "DDIM"
        else:
            guidance = request.guidance_scale if request.guidance_scale is not None else 7.5
            pictures = [runner.text_to_image(request.prompt, request.negative_prompt, width, height, request.steps,
                                             guidance, s) for s in seeds]
            scheduler = type(runner.pipeline.scheduler).__name__
    except InvalidInput as exc:
        raise as_parameters(exc, request.prompt) from None
    images = [{"imageData": base64.b64encode(png_bytes(p)).decode(), "format": "png", "width": p.width,
               "height": p.height, "seed": s} for p, s in zip(pictures, seeds)]
    return {"images": images, "metadata": {"steps": request.steps, "guidanceScale": guidance, "scheduler": scheduler,
                                           "model": model.name, "modelVersion": model.version}}


def predict(runner: Any, inputs: Any, max_items: int) -> dict[str, Any]:
    """An inference engine's outputs for ``inputs`` (one item or a list), validated by its schema."""
    if inputs is None:
        raise InvalidParameters("inputs", None, "required", f"Invalid inputs: model '{runner.name}' "
                                f"({runner.task}) takes `inputs`, as /predict does")
    schema = runner.schema
    try:
        if schema.is_single(inputs):
            items, batch = [schema.validate_item(inputs, "inputs")], False
        else:
            items, batch = schema.validate(inputs, max_items)
    except InvalidInput as exc:
        raise InvalidParameters(exc.field, None, "the model's input schema", f"Invalid {exc.message}") from None
    outputs = runner.predict(items)
    return {"outputs": outputs if batch else outputs[0], "metadata": {"items": len(items), "task": runner.task}}


def decode_image(data: str, max_pixels: int):
    """A PIL image from base64 (a data: URL too); InvalidParameters for anything that is not one."""
    import binascii
    import io

    from PIL import Image, UnidentifiedImageError

    text = data.split(",", 1)[1] if data.startswith("data:") else data
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidParameters("imageData", data[:40], "base64", "Invalid imageData: not base64") from None
    try:
        image = Image.open(io.BytesIO(raw))
        if image.width * image.height > max_pixels:
            raise InvalidParameters("imageData", f"{image.width}x{image.height}", f"at most {max_pixels} pixels",
                                    f"Invalid imageData: {image.width}x{image.height} is larger than this server decodes")
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise InvalidParameters("imageData", data[:40], "PNG, JPEG or WebP image",
                                f"Invalid imageData: not a readable image ({exc})") from None
    return image


def encode_png(image: Any) -> str:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()
