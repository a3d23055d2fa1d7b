"""Image and video generation as tasks: ``generate_image`` (text-to-image, or SDEdit image-to-image from an
uploaded file) and ``generate_video`` (text-to-video, or image-to-video from an uploaded file). Progress is
the denoising step; a cancelled task stops between steps. Outputs are files of the files store, also linked
under KILN_HOME/outputs/images|videos for seed 001's ``image_url``/``video_url``."""

from __future__ import annotations

import os
import random
import time
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from kiln.errors import InvalidInput
from kiln.tasks.context import TaskContext
from kiln.tasks.registry import Inputs, TaskType

IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")


class GenerationParameters(BaseModel):
    prompt: str = Field("", max_length=1000)
    negative_prompt: str | None = Field(None, max_length=1000, description="The unconditional branch of guidance")
    num_inference_steps: int = Field(25, ge=1, le=200)
    guidance_scale: float | None = Field(None, ge=0.0, le=50.0, description="Default: the model's (digits: as trained, hub 7.5)")
    seed: int | None = Field(None, ge=0, le=2**32 - 1, description="The same seed gives the same output")
    model_id: str | None = Field(None, max_length=128, description="A stored generation model (default digits-diffusion)")
    input_file: str | None = Field(None, max_length=255, description="image-to-*: the uploaded source image")


class ImageParameters(GenerationParameters):
    mode: Literal["text-to-image", "image-to-image"] = "text-to-image"
    width: int | None = Field(None, ge=8, le=4096)
    height: int | None = Field(None, ge=8, le=4096)
    strength: float = Field(0.75, ge=0.0, le=1.0, description="image-to-image: 0 keeps the input, 1 ignores it")

    @model_validator(mode="after")
    def source_for_mode(self) -> ImageParameters:
        return _source_for_mode(self)


class VideoParameters(GenerationParameters):
    mode: Literal["text-to-video", "image-to-video"] = "text-to-video"
    num_frames: int = Field(24, ge=2, le=128)
    fps: int = Field(8, ge=1, le=60)
    format: Literal["mp4", "gif"] = "mp4"
    motion: float = Field(0.5, ge=0.0, le=1.0, description="image-to-video with the digits model: how far frames move")

    @model_validator(mode="after")
    def source_for_mode(self) -> VideoParameters:
        return _source_for_mode(self)


def _source_for_mode(parameters: Any) -> Any:
    from_image = parameters.mode.startswith("image-")
    if from_image and not parameters.input_file:
        raise ValueError(f"{parameters.mode} needs input_file (an uploaded image)")
    if parameters.mode != "image-to-video" and not parameters.prompt.strip():
        raise ValueError(f"{parameters.mode} needs a prompt")
    return parameters


def models_for(inputs_or_context: Any):
    from kiln.generation.models import shared_models

    return shared_models(inputs_or_context.files.settings.model_store_dir)


def check_request(parameters: Any, inputs: Inputs):
    """At creation: the model exists and can do it (404/503/422), the size and the prompt fit it (422),
    the input file is the caller's image. Answers the resolved model."""
    model = models_for(inputs).resolve(parameters.model_id, parameters.mode)
    if isinstance(parameters, ImageParameters) and parameters.mode == "text-to-image":
        model.check_size(parameters.width, parameters.height)
    if parameters.prompt.strip():  # image-to-video may go without one
        model.ground(parameters.prompt, video=isinstance(parameters, VideoParameters))
    if parameters.input_file:
        source = inputs.file(parameters.input_file, field="parameters.input_file")
        if source.content_type not in IMAGE_TYPES:
            raise InvalidInput("parameters.input_file", f"needs an image ({', '.join(IMAGE_TYPES)}), got {source.content_type}")
    return model


def _progress(context: TaskContext, started: float, last: list[float]):
    """The callback between denoising steps: progress (5..95%), and where a cancelled task stops."""

    def on_step(done: int, total: int) -> None:
        percent = 5 + 90 * done / max(1, total)
        last[0] = percent
        context.progress(percent, f"denoising step {done}/{total}", step=done, total_steps=total,
                         seconds=round(time.perf_counter() - started, 3))

    return on_step


def _open_image(context: TaskContext, reference: str):
    from PIL import Image, UnidentifiedImageError

    source = context.inputs.file(reference)
    try:
        with Image.open(context.files.path(source)) as image:
            image.load()
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise InvalidInput("input_file", f"{source.filename} is not a readable image: {exc}") from None


def publish(context: TaskContext, data: bytes, filename: str, content_type: str, folder: str, description: str) -> dict:
    """Store the output in the files store and link it under outputs/<folder>/ (one copy on disk)."""
    stored = context.files.save_bytes(data, filename, content_type, context.owner_id, description[:200], context.task_id)
    outputs = context.files.settings.outputs_dir / folder
    outputs.mkdir(parents=True, exist_ok=True)
    target = outputs / filename
    temporary = outputs / f".{filename}.part"
    try:
        os.link(context.files.path(stored), temporary)
    except OSError:  # another filesystem: a copy
        import shutil

        shutil.copyfile(context.files.path(stored), temporary)
    temporary.replace(target)
    return {"file_id": stored.id, "filename": filename, "size": stored.size, "content_type": content_type,
            "url": f"/outputs/{folder}/{filename}", "download_url": f"/files/{stored.id}/download"}


def generate_image(parameters: ImageParameters, context: TaskContext) -> dict[str, Any]:
    from kiln.generation.media import png_bytes, to_pil

    model = check_request(parameters, context.inputs)
    seed = parameters.seed if parameters.seed is not None else random.randrange(2**32)
    context.progress(1, f"loading {model.id}", force=True)
    generator = models_for(context).load(model)
    started, last = time.perf_counter(), [0.0]
    on_step = _progress(context, started, last)
    digits = model.kind == "digits-ddpm"
    guidance = parameters.guidance_scale if parameters.guidance_scale is not None else model.default_guidance
    if parameters.mode == "image-to-image":
        source = _open_image(context, parameters.input_file)
        width, height = source.size if not digits else (model.native, model.native)
        if not digits:
            width, height = model.check_size(*(s - s % model.scale for s in source.size))
            source = source.resize((width, height))
        image = generator.image_to_image(source, parameters.prompt, seed=seed, strength=parameters.strength,
                                         steps=parameters.num_inference_steps, guidance_scale=guidance,
                                         negative_prompt=parameters.negative_prompt, on_step=on_step)
        stem = "transformed"
    else:
        width, height = model.check_size(parameters.width, parameters.height)
        if digits:
            from kiln.generation.batching import digits_batcher

            image = digits_batcher(generator).generate(parameters.prompt, seed, parameters.negative_prompt,
                                                       parameters.num_inference_steps, guidance, on_step)
        else:
            image = generator.text_to_image(parameters.prompt, parameters.negative_prompt, width, height,
                                            parameters.num_inference_steps, guidance, seed, on_step)
        stem = "generated"
    picture = to_pil(image, width if digits else None)
    output = publish(context, png_bytes(picture), f"{stem}_{context.task_id}.png", "image/png", "images",
                     parameters.prompt or "image-to-image")
    return {"image_url": output["url"], "image": output, "model_id": model.id, "model_version": model.version,
            "seed": seed, "width": picture.width, "height": picture.height, "guidance_scale": guidance,
            "num_inference_steps": parameters.num_inference_steps, "mode": parameters.mode,
            "seconds": round(time.perf_counter() - started, 3)}


def image_lane(parameters: ImageParameters, inputs: Inputs) -> str:
    """Text-to-image on a digits model waits on the model's batcher: the batched lane, so that many requests
    can be in flight and form one batch. Everything else holds its thread for its whole run: the default lane."""
    from kiln.tasks.queue import BATCHED_LANE, DEFAULT_LANE

    model = check_request(parameters, inputs)
    return BATCHED_LANE if model.kind == "digits-ddpm" and parameters.mode != "image-to-image" else DEFAULT_LANE


def generate_video(parameters: VideoParameters, context: TaskContext) -> dict[str, Any]:
    from kiln.generation.media import VIDEO_TYPES, video_bytes

    model = check_request(parameters, context.inputs)
    seed = parameters.seed if parameters.seed is not None else random.randrange(2**32)
    context.progress(1, f"loading {model.id}", force=True)
    generator = models_for(context).load(model)
    started, last = time.perf_counter(), [0.0]
    on_step = _progress(context, started, last)
    digits = model.kind == "digits-ddpm"
    guidance = parameters.guidance_scale if parameters.guidance_scale is not None else model.default_guidance
    steps, frames_wanted = parameters.num_inference_steps, parameters.num_frames
    if parameters.mode == "image-to-video":
        source = _open_image(context, parameters.input_file)
        if digits:
            frames = generator.animate(source, frames_wanted, seed, steps, parameters.motion,
                                       parameters.prompt or None, on_step)
        else:
            frames = generator.image_to_video(source, frames_wanted, parameters.fps, steps, seed, on_step)
    elif digits:
        frames = generator.video(parameters.prompt, frames_wanted, seed, steps, guidance, on_step)
    else:
        frames = generator.text_to_video(parameters.prompt, frames_wanted, steps, guidance, seed,
                                         parameters.negative_prompt, on_step)
    context.progress(96, f"encoding {len(frames)} frames as {parameters.format}", force=True)
    data = video_bytes(list(frames), parameters.fps, parameters.format)
    output = publish(context, data, f"video_{context.task_id}.{parameters.format}", VIDEO_TYPES[parameters.format],
                     "videos", parameters.prompt or "image-to-video")
    return {"video_url": output["url"], "video": output, "model_id": model.id, "model_version": model.version,
            "seed": seed, "num_frames": len(frames), "fps": parameters.fps, "format": parameters.format,
            "duration": round(len(frames) / parameters.fps, 3), "mode": parameters.mode,
            "seconds": round(time.perf_counter() - started, 3)}


TYPES = [
    TaskType("generate_image", "Generate an image from a prompt, or transform an uploaded one (SDEdit)",
             ImageParameters, generate_image, check_request, lane=image_lane),
    TaskType("generate_video", "Generate a video from a prompt, or animate an uploaded image",
             VideoParameters, generate_video, check_request),
]
