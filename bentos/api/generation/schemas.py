"""Request and response bodies of seed 001's Generation APIs."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Seed = Field(None, ge=0, le=2**32 - 1, description="The same seed gives the same output; default random")
Steps = Field(25, ge=1, le=200, description="Denoising steps")
Guidance = Field(None, ge=0.0, le=50.0, description="Classifier-free guidance; default the model's (digits 2, hub 7.5)")
ModelId = Field(None, max_length=128, description="A stored generation model (GET /api/text-to-image/models); default digits-diffusion")


class TextToImageRequest(BaseModel):
    prompt: str = Field(..., min_length=1, max_length=1000, examples=["a handwritten 7"])
    negative_prompt: str | None = Field(None, max_length=1000, description="The unconditional branch of guidance")
    width: int | None = Field(None, ge=8, le=4096, description="Default: the model's native size")
    height: int | None = Field(None, ge=8, le=4096)
    num_inference_steps: int = Steps
    guidance_scale: float | None = Guidance
    seed: int | None = Seed
    model_id: str | None = ModelId


class TextToVideoRequest(BaseModel):
    prompt: str = Field(..., min_length=1, max_length=1000, examples=["a 3 turning into a 7"])
    negative_prompt: str | None = Field(None, max_length=1000)
    num_frames: int = Field(24, ge=2, le=128)
    fps: int = Field(8, ge=1, le=60)
    num_inference_steps: int = Steps
    guidance_scale: float | None = Guidance
    seed: int | None = Seed
    model_id: str | None = ModelId
    format: Literal["mp4", "gif"] = "mp4"


class GenerationStarted(BaseModel):
    task_id: str
    status: str = Field(description="processing: the task is queued or running")
    image_url: str | None = None
    video_url: str | None = None
    progress: float = 0


class GenerationStatus(BaseModel):
    task_id: str
    status: str = Field(description="processing | completed | failed | cancelled")
    task_status: str = Field(description="The task system's status (pending, scheduled, running, ...)")
    task_type: str
    progress: float = Field(description="0..100, from the denoising step")
    step: int | None = Field(None, description="Denoising steps done")
    total_steps: int | None = None
    eta_seconds: float | None = Field(None, description="Estimated time left while running")
    image_url: str | None = None
    video_url: str | None = None
    error: str | None = None
    message: str | None = None
    seed: int | None = None
    model_id: str | None = None


class GenerationModelOut(BaseModel):
    id: str
    name: str
    description: str
    resolution: str
    loaded: bool
    task: str
    kind: str
    version: str
