"""Seed 001's generation routes. ``generate`` answers at once with a task id (status "processing"); the
work is a ``generate_image``/``generate_video`` task. Requests are checked before the task is made: an
unknown model 404, a known hub model not stored 503, a size or prompt the model cannot do 422, an upload
that is not an image 415 (its bytes decide) or is a broken one 400."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile
from starlette.concurrency import run_in_threadpool

from bentos.api.generation.deps import FilesDep, ModelsDep, TasksDep
from bentos.api.generation.schemas import (
    GenerationModelOut,
    GenerationStarted,
    GenerationStatus,
    TextToImageRequest,
    TextToVideoRequest,
)
from bentos.api.http.identity import CallerDep
from kiln.errors import BadRequest, InvalidInput
from kiln.tasks.types.generation import IMAGE_TYPES

router = APIRouter(prefix="/api", tags=["generation (seed 001)"])
STEP = re.compile(r"denoising step (\d+)/(\d+)")
BAD_INPUT = {404: {"description": "model_id names no stored model (the stored ones are listed)"},
             422: {"description": "A size, prompt or parameter the model cannot take"},
             503: {"description": "A known hub model that is not stored (says how to get it), or none trained yet"}}
UPLOAD = {**BAD_INPUT, 400: {"description": "The image is damaged"}, 415: {"description": "The file is not an image"}}


def _started(task: Any) -> dict:
    return {"task_id": task.id, "status": "processing", "image_url": None, "video_url": None, "progress": 0}


def _create(tasks: Any, caller: Any, kind: str, title: str, parameters: dict) -> Any:
    return tasks.create(caller.owner_id, title[:200], kind, {k: v for k, v in parameters.items() if v is not None})


@router.post("/text-to-image/generate", response_model=GenerationStarted, status_code=202, responses=BAD_INPUT,
             summary="Start generating an image from a prompt; poll /api/text-to-image/status/{task_id}")
async def text_to_image(body: TextToImageRequest, tasks: TasksDep, caller: CallerDep) -> dict:
    task = await run_in_threadpool(_create, tasks, caller, "generate_image", f"text-to-image: {body.prompt}",
                                   {"mode": "text-to-image", **body.model_dump()})
    return _started(task)


@router.post("/text-to-video/generate", response_model=GenerationStarted, status_code=202, responses=BAD_INPUT,
             summary="Start generating a video from a prompt (digits: one digit moving, or 'a 3 turning into a 7')")
async def text_to_video(body: TextToVideoRequest, tasks: TasksDep, caller: CallerDep) -> dict:
    task = await run_in_threadpool(_create, tasks, caller, "generate_video", f"text-to-video: {body.prompt}",
                                   {"mode": "text-to-video", **body.model_dump()})
    return _started(task)


def _save_image(files: Any, upload: UploadFile | None, owner_id: str | None) -> Any:
    """The upload in the files store, if its bytes are an image (415 otherwise) that decodes (400 otherwise)."""
    from PIL import Image, UnidentifiedImageError

    if upload is None:
        raise InvalidInput("image", "an image file is required (multipart/form-data field `image`)")
    record = files.save(upload.file, upload.filename, upload.content_type, owner_id, "generation input",
                        allowed=list(IMAGE_TYPES))
    try:
        with Image.open(files.path(record)) as image:
            image.load()
            if image.width < 1 or image.height < 1 or image.width * image.height > 40_000_000:
                raise BadRequest(f"image: {image.width}x{image.height} is not a size this server decodes")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise BadRequest(f"image: {upload.filename or 'the upload'} is not a readable image ({exc})") from None
    return record


@router.post("/image-to-image/generate", response_model=GenerationStarted, status_code=202, responses=UPLOAD,
             summary="Start transforming an uploaded image towards a prompt (SDEdit: strength 0 keeps it, 1 ignores it)")
async def image_to_image(
    tasks: TasksDep, files: FilesDep, caller: CallerDep,
    prompt: Annotated[str, Form(min_length=1, max_length=1000, description="Transformation prompt")],
    image: Annotated[UploadFile | None, File(description="Source image (PNG, JPEG, GIF, WebP)")] = None,
    negative_prompt: Annotated[str | None, Form(max_length=1000)] = None,
    strength: Annotated[float, Form(ge=0.0, le=1.0)] = 0.75,
    num_inference_steps: Annotated[int, Form(ge=1, le=200)] = 25,
    guidance_scale: Annotated[float | None, Form(ge=0.0, le=50.0)] = None,
    seed: Annotated[int | None, Form(ge=0, le=2**32 - 1)] = None,
    model_id: Annotated[str | None, Form(max_length=128)] = None,
) -> dict:
    try:
        record = await run_in_threadpool(_save_image, files, image, caller.owner_id)
    finally:
        if image is not None:
            await image.close()
    task = await run_in_threadpool(_create, tasks, caller, "generate_image", f"image-to-image: {prompt}", {
        "mode": "image-to-image", "input_file": record.id, "prompt": prompt, "negative_prompt": negative_prompt,
        "strength": strength, "num_inference_steps": num_inference_steps, "guidance_scale": guidance_scale,
        "seed": seed, "model_id": model_id})
    return _started(task)


@router.post("/image-to-video/generate", response_model=GenerationStarted, status_code=202, responses=UPLOAD,
             summary="Start animating an uploaded image into a video")
async def image_to_video(
    tasks: TasksDep, files: FilesDep, caller: CallerDep,
    image: Annotated[UploadFile | None, File(description="Source image (PNG, JPEG, GIF, WebP)")] = None,
    num_frames: Annotated[int, Form(ge=2, le=128)] = 24,
    fps: Annotated[int, Form(ge=1, le=60)] = 8,
    num_inference_steps: Annotated[int, Form(ge=1, le=200)] = 25,
    seed: Annotated[int | None, Form(ge=0, le=2**32 - 1)] = None,
    model_id: Annotated[str | None, Form(max_length=128)] = None,
    prompt: Annotated[str | None, Form(max_length=1000, description="digits model: the digit to move towards")] = None,
    motion: Annotated[float, Form(ge=0.0, le=1.0)] = 0.5,
    format: Annotated[str, Form(pattern="^(mp4|gif)$")] = "mp4",
) -> dict:
    try:
        record = await run_in_threadpool(_save_image, files, image, caller.owner_id)
    finally:
        if image is not None:
            await image.close()
    task = await run_in_threadpool(_create, tasks, caller, "generate_video", "image-to-video", {
        "mode": "image-to-video", "input_file": record.id, "num_frames": num_frames, "fps": fps,
        "num_inference_steps": num_inference_steps, "seed": seed, "model_id": model_id, "prompt": prompt or "",
        "motion": motion, "format": format})
    return _started(task)


def status_of(task: Any) -> dict:
    """A task as seed 001's status: processing until it ends; progress from the denoising step, and the ETA
    from the time per percent so far."""
    result = task.result or {}
    running = task.status in ("pending", "scheduled", "running")
    step = STEP.search(task.message or "") if task.status == "running" else None
    eta = None
    if task.status == "running" and task.started_at is not None and task.progress > 1:
        started = task.started_at if task.started_at.tzinfo else task.started_at.replace(tzinfo=timezone.utc)
        elapsed = (datetime.now(timezone.utc) - started).total_seconds()
        eta = round(elapsed * (100 - task.progress) / task.progress, 2)
    return {
        "task_id": task.id, "status": "processing" if running else task.status, "task_status": task.status,
        "task_type": task.task_type, "progress": round(task.progress, 1),
        "step": int(step.group(1)) if step else None, "total_steps": int(step.group(2)) if step else None,
        "eta_seconds": eta, "image_url": result.get("image_url"), "video_url": result.get("video_url"),
        "error": task.error, "message": task.message, "seed": result.get("seed"), "model_id": result.get("model_id"),
    }


@router.get("/text-to-image/status/{task_id}", response_model=GenerationStatus,
            responses={404: {"description": "No generation task with this id (for this caller)"}},
            summary="A generation's status, progress, ETA and output URL (any generation task: images and videos)")
async def status(task_id: str, tasks: TasksDep, caller: CallerDep) -> dict:
    from kiln.errors import NotFound

    task = await run_in_threadpool(tasks.get, task_id, caller.owner_id, caller.see_all)
    if task.task_type not in ("generate_image", "generate_video"):
        raise NotFound(f"No generation task with id '{task_id}'", {"task_id": task_id})
    return status_of(task)


@router.get("/text-to-image/models", response_model=list[GenerationModelOut],
            summary="The generation models stored in this workspace, their resolution and whether they are loaded")
async def models(generation: ModelsDep) -> list[dict]:
    return await run_in_threadpool(generation.listing)
