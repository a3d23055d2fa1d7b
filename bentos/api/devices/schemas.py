"""Request and response bodies of seed 004, in its camelCase (fields are snake_case here, aliases camelCase).

The response models mirror the dicts the routes and kiln's device modules build (FastAPI validates each answer
against its model and writes it by alias). Where a key appears only sometimes (a batch item's outputs, an
inference's ``images`` or ``outputs``, a device's ``process`` memory) the route answers with
``response_model_exclude_unset``: a key the dict lacks stays out of the answer instead of coming back null."""

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


class OptimalOut(Camel):
    device_id: str = Field(description="The device chosen")
    device: DeviceOut
    reason: str = Field(description="Why: its available memory (MB), and why a preferred type was not used")
    operation: str
    model_type: str | None = Field(description="As asked (the choice does not depend on it)")
    alternatives: list[str] = Field(description="The other usable devices")


class DeviceStatusRow(DeviceOut):
    status: Literal["busy", "idle", "unusable"] = Field(description="busy: one of its sessions is running work")


class KilnDeviceOut(Camel):
    setting: str = Field(description="KILN_DEVICE: auto, cpu, cuda or cuda:N")
    device: str = Field(description="The torch device it resolves to: cpu, cuda:N")
    reason: str


class TorchOut(Camel):
    version: str | None = Field(description="torch's version; null when torch is not installed")
    cuda_build: str | None = Field(description="The CUDA version torch was built with; null for a CPU build")
    cuda_available: bool = Field(description="torch can use a CUDA device")
    reason: str


class CallerOut(Camel):
    kind: str = Field(description="user or api_key")
    name: str = Field(description="The username, or the key's user id")


class DeviceStatusOut(Camel):
    devices: list[DeviceStatusRow]
    sessions: int = Field(description="Sessions held on all devices")
    kiln_device: KilnDeviceOut = Field(description="Where KILN_DEVICE puts Kiln's models, and why")
    torch: TorchOut
    caller: CallerOut | None = Field(description="Who asked; null for a caller without credentials")


# --- models and sessions ---

class LoadRequest(Camel):
    model_path: str = Field(..., min_length=1, max_length=300, description="A stored model: 'digits-diffusion', "
                            "'models/<name>', '<name>:<version>'; never a path on the server")
    model_type: str | None = Field(None, max_length=64, description="digits-diffusion, sdxl, sd15, classification, ...")
    device_id: str | None = DeviceIdField
    loading_strategy: Literal["optimal", "eager", "lazy"] = Field(
        "optimal", description="optimal/eager: load now; lazy: on first use")


class SessionInfo(Camel):
    """A session as ``DeviceSessions.describe`` answers it."""

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
    created_at: float = Field(description="epoch seconds")
    last_used_at: float = Field(description="epoch seconds")


class SessionOut(SessionInfo):
    evicted_sessions: list[str] = Field(default_factory=list, description="Unloaded to stay in KILN_MODEL_CACHE_BYTES")


class CacheRequest(Camel):
    model_paths: list[str] = Field(..., min_length=1, max_length=16)
    components: list[str] | None = Field(None, max_length=16)
    device_id: str | None = DeviceIdField


class ControlRequest(Camel):
    action: Literal["pause", "resume", "cancel"]


class CachedModel(SessionInfo):
    hit: bool = Field(description="Its session was loaded already: nothing was loaded for it")
    components: list[str] = Field(description="The components asked for that the model has (all of them when "
                                  "none were asked); a model is cached whole")
    missing_components: list[str] = Field(description="Components asked for that the model does not have")
    available_components: list[str] = Field(description="The model's components")


class CacheUsage(Camel):
    cache_bytes: int = Field(description="bytes the loaded sessions hold, as measured at their loads")
    budget_bytes: int | None = Field(description="KILN_MODEL_CACHE_BYTES; null: no budget")
    free_bytes: int | None = Field(description="budgetBytes - cacheBytes, at least 0; null: no budget")


class CacheOut(CacheUsage):
    cached: list[CachedModel]
    evicted_sessions: list[str] = Field(description="Sessions unloaded to stay in KILN_MODEL_CACHE_BYTES")


class CacheStatusOut(CacheUsage):
    sessions: list[SessionInfo] = Field(description="The caller's sessions (every one for admins and with auth off)")


class ControlOut(Camel):
    session_id: str
    action: Literal["pause", "resume", "cancel"]
    status: str = Field(description="The session's status after the action: paused, cancelled, running, loaded, "
                        "unloaded")
    running_operations: int = Field(description="Work running now (it finishes)")
    cancelled_operations: int = Field(description="Queued work dropped (cancel; 0 otherwise)")


class UnloadOut(Camel):
    session_id: str
    status: Literal["unloaded"]
    device_id: str
    memory_before: int = Field(description="bytes the process held on the device before (CUDA allocator, or RSS)")
    memory_after: int = Field(description="bytes, after the unload (gc and malloc_trim first)")
    memory_returned: int = Field(description="bytes: memoryBefore - memoryAfter, at least 0")
    memory_returned_mb: float = Field(alias="memoryReturnedMB", description="memoryReturned in MB")
    memory_taken: int = Field(description="bytes the session took at its last load; 0 if it was not loaded")
    returned_share: float | None = Field(description="memoryReturned / memoryTaken; null when memoryTaken is 0")
    measure: Literal["CUDA allocator", "process RSS"]


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

class ImageSize(Camel):
    width: int = Field(description="pixels")
    height: int = Field(description="pixels")


class EncodedImage(Camel):
    image_data: str = Field(description="base64 PNG")
    format: Literal["png"]
    width: int = Field(description="pixels")
    height: int = Field(description="pixels")


class GeneratedImage(EncodedImage):
    seed: int


class InferenceResults(Camel):
    images: list[GeneratedImage] | None = Field(None, description="Generation models: the images drawn (absent "
                                                "for other models)")
    outputs: Any = Field(None, description="Other models: their outputs as /predict answers them, a list for a list "
                         "of inputs (absent for generation models)")
    metadata: dict[str, Any] = Field(description="inferenceTime (seconds) always; generation models: steps, "
                                     "guidanceScale, scheduler, model, modelVersion; other models: items, task")


class InferenceOut(Camel):
    inference_id: str
    session_id: str
    device_id: str
    status: Literal["completed"]
    results: InferenceResults


class UpscaleOut(Camel):
    upscaled_image: EncodedImage
    processing_time: float = Field(description="seconds, loading the network included")
    upscale_model: str = Field(description="The upscaler used: a stored model's name, or the classical method")
    upscale_factor: int
    method: Literal["model", "classical"]
    tiles: int = Field(description="Tiles the network ran on; 0 for classical resampling")
    oom_retries: int = Field(description="Times the tile size was halved after running out of memory")
    architecture: str | None = Field(description="The network's (SRVGGNetCompact, RRDBNet); null for classical")
    precision: str | None = Field(description="The network's dtype: fp32, fp16, bf16; null for classical")
    note: str | None = Field(description="What was done besides the plain method (downsampling, alpha); null: nothing")
    device_id: str
    source: ImageSize = Field(description="The input image's size")

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


class BatchCounts(Camel):
    pending: int
    running: int
    completed: int
    failed: int


class BatchItemOutput(Camel):
    """One operation's output for an item; inference outputs have seed and seconds, postprocessing ones
    upscaler and method."""

    operation: Literal["inference", "postprocessing"]
    width: int = Field(description="pixels")
    height: int = Field(description="pixels")
    seed: int | None = Field(None, description="inference")
    seconds: float | None = Field(None, description="inference: the item's share of its group's sampling, seconds")
    upscaler: str | None = Field(None, description="postprocessing: the upscaler used")
    method: str | None = Field(None, description="postprocessing: model or classical")


class BatchItemResult(Camel):
    file_id: str = Field(description="The final image, in the files store")
    download_url: str
    width: int = Field(description="pixels")
    height: int = Field(description="pixels")


class BatchItem(Camel):
    """An item; startedAt, finishedAt, outputs, result and error appear as it runs and ends."""

    index: int
    device_id: str
    status: Literal["pending", "running", "completed", "failed"]
    started_at: float | None = Field(None, description="epoch seconds")
    finished_at: float | None = Field(None, description="epoch seconds")
    outputs: list[BatchItemOutput] | None = Field(None, description="Each operation's output, in order")
    result: BatchItemResult | None = Field(None, description="A completed item's final image")
    error: str | None = Field(None, description="Why the item failed")


class BatchOut(Camel):
    batch_id: str
    batch_name: str
    status: str = Field(description="created, running, completed, completed_with_errors, failed, cancelled")
    item_count: int
    device_ids: list[str]
    operations: list[Operation]
    task_id: str | None = Field(description="The device_batch task running it (GET /tasks/{taskId}); null before execute")
    progress: float = Field(description="percent, 0..100")
    counts: BatchCounts = Field(description="Items by status")
    items: list[BatchItem]
    created_at: float = Field(description="epoch seconds")
    error: str | None = Field(description="The task's error, if it failed")


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


class AllocationOut(Camel):
    allocation_id: str
    device_id: str
    size: float = Field(description="MB")
    size_bytes: int
    type: Literal["tensor_buffer", "pinned", "workspace"]
    persistent: bool = Field(description="Kept by defragment (a non-persistent one goes at the next aggressive one)")
    created_at: float = Field(description="epoch seconds")
    transfers: int = Field(description="Times it was moved")


class AllocatedOut(AllocationOut):
    status: Literal["allocated"]
    allocation_time: float = Field(description="seconds")


class ReleasedOut(AllocationOut):
    status: Literal["released"]


class KilnMemoryBytes(Camel):
    sessions: int
    allocations: int
    upscalers: int


class KilnMemory(Camel):
    sessions: float = Field(description="MB the loaded sessions hold (measured at their loads)")
    allocations: float = Field(description="MB of the reservations")
    upscalers: float = Field(description="MB of the loaded super-resolution networks' parameters")
    total: float = Field(description="MB")
    bytes: KilnMemoryBytes = Field(description="The same, in bytes")


class MemorySession(Camel):
    session_id: str
    model_path: str
    status: str
    memory_usage: float = Field(description="MB; 0 when unloaded")


class DeviceMemory(Camel):
    device_id: str
    type: Literal["cpu", "gpu"]
    total: float = Field(description="MB")
    used: float = Field(description="MB")
    free: float = Field(description="MB")
    unit: Literal["MB"]
    usable: bool
    process: float | None = Field(None, description="MB this process holds there (RSS on the CPU, the CUDA allocator "
                                  "on a GPU); usable devices only")
    kiln: KilnMemory = Field(description="Kiln's own share")
    sessions: list[MemorySession]
    allocations: list[AllocationOut]


class MemoryStatusOut(Camel):
    devices: list[DeviceMemory]
    model_cache_budget_bytes: int | None = Field(description="KILN_MODEL_CACHE_BYTES; null: no budget")
    model_cache_bytes: int = Field(description="bytes the loaded sessions hold")


class TransferOut(Camel):
    source_device: str
    target_device: str
    status: Literal["completed"]
    allocation_id: str
    bytes: int
    seconds: float
    bandwidth_mbps: float | None = Field(alias="bandwidthMBps", description="MB per second; null when too fast to time")
    same_device: bool = Field(description="A copy into a new buffer on the same device")
    verified: bool = Field(description="The copy's first KiB equals the source's")
    target_memory_delta_bytes: int = Field(description="bytes the target device's measure changed by")


class OperationStarted(Camel):
    operation_id: str
    status: Literal["running"]
    run_async: Literal[True] = Field(alias="async")
    status_url: str = Field(description="GET it for the result")


class DefragmentDevice(Camel):
    device_id: str
    before: int = Field(description="bytes (CUDA allocator, or process RSS)")
    after: int = Field(description="bytes")
    bytes_returned: int
    measure: Literal["CUDA allocator", "process RSS"]


class DefragmentOut(Camel):
    devices: list[DefragmentDevice]
    bytes_returned: int
    aggressive: bool
    unloaded_sessions: list[str] = Field(description="Idle sessions unloaded (aggressive; reloaded on next use)")
    released_allocations: list[str] = Field(description="Non-persistent reservations freed (aggressive)")
    unloaded_upscaler_bytes: int = Field(description="bytes of super-resolution networks dropped (aggressive)")
    gc_objects: int = Field(description="Objects Python's gc collected")
    malloc_trim: bool = Field(description="malloc_trim gave memory back to the system")
    cuda_empty_cache: bool
    status: Literal["completed"]


class MemoryOperationOut(Camel):
    operation_id: str
    kind: Literal["transfer", "defragment"]
    status: Literal["running", "completed", "failed"]
    started_at: float = Field(description="epoch seconds")
    result: TransferOut | DefragmentOut | None = Field(description="The transfer's or defragment's answer, once completed")
    error: str | None = Field(description="Why it failed")
