"""Request and response bodies of seed 004, in its camelCase (fields are snake_case here, aliases camelCase)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


DeviceIdField = Field(None, max_length=32, pattern=r"^(cpu|gpu)-\d{1,3}$", description="cpu-0, gpu-N")


# --- devices ---

class DeviceOut(Camel):
    id: str
    name: str
    type: Literal["cpu", "gpu"]
    is_available: bool = Field(description="Usable by this torch, with a free session slot")
    memory_total: int = Field(description="MB")
    memory_available: int = Field(description="MB")
    cores: int | None = None
    sessions: int
    max_concurrent_sessions: int
    usable: bool = Field(description="torch can run on it (a CPU build of torch cannot use a GPU)")
    reason: str


class CapabilitiesOut(Camel):
    device_id: str
    supported_operations: list[str]
    supported_model_types: list[str] = Field(description="The types of the models this server's store holds")
    max_concurrent_sessions: int
    capabilities: dict[str, Any]


class Requirements(Camel):
    min_memory: float = Field(0, ge=0, le=10_000_000, description="MB")
    preferred_type: Literal["cpu", "gpu"] | None = None


class OptimalRequest(Camel):
    operation: Literal["inference", "postprocessing", "model_loading"] = "inference"
    model_type: str | None = Field(None, max_length=64)
    requirements: Requirements = Field(default_factory=Requirements)


# --- models and sessions ---

class LoadRequest(Camel):
    model_path: str = Field(..., min_length=1, max_length=300, description="A stored model: 'digits-diffusion', "
                            "'models/<name>', '<name>:<version>'; never a path on the server")
    model_type: str | None = Field(None, max_length=64, description="digits-diffusion, sdxl, sd15, classification, ...")
    device_id: str | None = DeviceIdField
    loading_strategy: Literal["optimal", "eager", "lazy"] = Field(
        "optimal", description="optimal/eager: load now; lazy: on first use")


class SessionOut(Camel):
    session_id: str
    model_path: str
    model_name: str
    model_version: str
    model_type: str
    device_id: str
    status: str
    loaded: bool
    memory_usage: float = Field(description="MB measured at load: torch's CUDA allocator, or the RSS delta on the CPU")
    memory_usage_bytes: int
    loading_time: float = Field(description="seconds")
    loading_strategy: str
    cached: bool
    loads: int
    running_operations: int
    queued_operations: int
    completed_operations: int
    failed_operations: int
    created_at: float
    last_used_at: float
    evicted_sessions: list[str] = Field(default_factory=list, description="Unloaded to stay in KILN_MODEL_CACHE_BYTES")


class CacheRequest(Camel):
    model_paths: list[str] = Field(..., min_length=1, max_length=16)
    components: list[str] | None = Field(None, max_length=16)
    device_id: str | None = DeviceIdField


class ControlRequest(Camel):
    action: Literal["pause", "resume", "cancel"]


# --- inference and postprocessing ---

class InferenceRequest(Camel):
    prompt: str | None = Field(None, max_length=1000)
    negative_prompt: str | None = Field(None, max_length=1000)
    width: int | None = Field(None, ge=8, le=4096)
    height: int | None = Field(None, ge=8, le=4096)
    steps: int = Field(20, ge=1, le=200)
    guidance_scale: float | None = Field(None, ge=0, le=50)
    seed: int | None = Field(None, ge=0, le=2**32 - 1)
    num_images: int = Field(1, ge=1, le=8)
    session_id: str | None = Field(None, max_length=64, description="Default: the device's newest session")
    device_id: str | None = DeviceIdField
    inputs: Any = Field(None, description="Models that are not generation models: their inputs, as /predict takes")


class UpscaleRequest(Camel):
    image_data: str = Field(..., min_length=1, max_length=80_000_000, description="base64 (or a data: URL)")
    upscale_model: str = Field("lanczos", max_length=128, description="A stored super-resolution model, or lanczos/bicubic")
    upscale_factor: int = Field(2, ge=2, le=4)
    device_id: str = Field("cpu-0", max_length=32, pattern=r"^(cpu|gpu)-\d{1,3}$")


# --- batches ---

class Operation(Camel):
    type: Literal["inference", "postprocessing"]
    parameters: dict[str, Any] = Field(default_factory=dict)


class BatchCreate(Camel):
    batch_name: str = Field(..., min_length=1, max_length=200)
    operations: list[Operation] = Field(..., min_length=1, max_length=8)
    item_count: int = Field(1, ge=1, le=10_000)
    device_ids: list[str] = Field(default_factory=lambda: ["cpu-0"], min_length=1, max_length=8)


class BatchExecute(Camel):
    concurrent: bool = True
    max_concurrency: int = Field(2, ge=1, le=16)


# --- memory ---

class AllocateRequest(Camel):
    size: float = Field(..., gt=0, le=1_048_576, description="MB")
    type: Literal["tensor_buffer", "pinned", "workspace"] = "tensor_buffer"
    device_id: str = Field("cpu-0", max_length=32, pattern=r"^(cpu|gpu)-\d{1,3}$")
    persistent: bool = False


class TransferRequest(Camel):
    source_device: str = Field(..., max_length=32)
    target_device: str = Field(..., max_length=32)
    allocation_id: str = Field(..., max_length=64)
    run_async: bool = Field(False, alias="async")


class DefragmentRequest(Camel):
    device_ids: list[str] | None = Field(None, max_length=8)
    aggressive: bool = False
    run_async: bool = Field(False, alias="async")
