"""Request and response bodies (seed 000's shapes)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class PredictRequest(BaseModel):
    model_name: str = Field("example", min_length=1, max_length=128, examples=["example"])
    inputs: Any = Field(
        ...,
        description="One input (a list of numbers, or a string) or a batch (a list of them)",
        examples=[[0.0] * 64, "A sentence to embed."],
    )
    enable_batching: bool | None = Field(None, description="Use adaptive batching (default: server setting)")


class ModelInfo(BaseModel):
    model: str
    device: str
    task: str
    version: str
    bento_model: str
    mlflow_run_id: str


class PredictResponse(BaseModel):
    success: bool = True
    result: Any
    processing_time: float
    batch_size: int
    model_info: ModelInfo
