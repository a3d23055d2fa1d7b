"""Seed 004's memory routes: per device total/used/free, Kiln's own share (sessions and reservations);
reservations that are real tensors on the device (409 when memory is short); moving one between devices,
measured; and defragmenting (gc, CUDA cache, malloc_trim; aggressive: idle sessions too), bytes returned."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from bentos.api.devices.deps import CallerDep, SessionsDep, SettingsDep
from bentos.api.devices.route import DevicesRoute, Envelope, ok
from bentos.api.devices.schemas import (
    AllocatedOut,
    AllocateRequest,
    DefragmentOut,
    DefragmentRequest,
    MemoryOperationOut,
    MemoryStatusOut,
    OperationStarted,
    ReleasedOut,
    TransferOut,
    TransferRequest,
)
from kiln.device_sessions import DeviceSessions
from kiln.devices import MIB
from kiln.errors import NotFound

router = APIRouter(prefix="/api/memory", tags=["devices (seed 004)"], route_class=DevicesRoute)
OPERATIONS: dict[str, dict[str, Any]] = {}  # async transfers and defragments of this process, by id
_operations_lock = threading.Lock()


def _status(sessions: DeviceSessions) -> dict[str, Any]:
    from kiln.device_memory import measure
    from kiln.device_registry import list_devices, memory_of
    from kiln.upscaling import loaded_upscalers

    upscalers = loaded_upscalers()
    devices = []
    for device in list_devices():
        own = sessions.on_device(device.id)
        buffers = sessions.allocations.on(device.id)
        row: dict[str, Any] = {"deviceId": device.id, "type": device.type, **memory_of(device), "unit": "MB",
                               "usable": device.usable}
        if device.usable:
            row["process"] = round(measure(device.torch_device) / MIB, 1)
        held = sum(s.memory_bytes for s in own if sessions.loaded(s))
        reserved = sum(a.size_bytes for a in buffers)
        names = {device.torch_device, "cuda"} if device.torch_device == "cuda:0" else {device.torch_device}
        networks = [u for u in upscalers if u["device"] in names]
        upscaling = sum(u["bytes"] for u in networks)  # parameter bytes of the loaded super-resolution networks
        row["kiln"] = {"sessions": round(held / MIB, 1), "allocations": round(reserved / MIB, 1),
                       "upscalers": round(upscaling / MIB, 1), "total": round((held + reserved + upscaling) / MIB, 1),
                       "bytes": {"sessions": held, "allocations": reserved, "upscalers": upscaling}}
        row["sessions"] = [{"sessionId": s.id, "modelPath": s.model_path, "status": sessions.status(s),
                            "memoryUsage": round(s.memory_bytes / MIB, 1) if sessions.loaded(s) else 0.0} for s in own]
        row["allocations"] = [a.describe() for a in buffers]
        devices.append(row)
    return {"devices": devices, "modelCacheBudgetBytes": sessions.settings.model_cache_bytes,
            "modelCacheBytes": sessions.held_bytes()}


@router.get("/status", response_model=Envelope[MemoryStatusOut], response_model_exclude_unset=True,
            summary="Per device: total/used/free (MB), this process, Kiln's sessions and reservations")
async def memory_status(sessions: SessionsDep) -> dict:
    return ok(await run_in_threadpool(_status, sessions))


def _allocate(sessions: DeviceSessions, body: AllocateRequest, headroom_mb: int, owner: str | None) -> dict[str, Any]:
    from kiln.device_registry import InsufficientMemory, memory_of, usable_device

    device = usable_device(body.device_id)
    free = memory_of(device)["free"]
    if body.size > free - headroom_mb:
        raise InsufficientMemory(f"Not enough memory on {device.id}: {body.size:g} MB asked, {free:.0f} MB free and "
                                 f"{headroom_mb} MB must stay free (KILN_DEVICE_MEMORY_HEADROOM_MB)",
                                 {"deviceId": device.id, "requested": body.size, "free": free, "headroom": headroom_mb})
    size = int(body.size * MIB)
    started = time.perf_counter()
    allocation = sessions.allocations.allocate(device.id, device.torch_device, size, body.type, body.persistent, owner)
    return {**allocation.describe(), "status": "allocated", "allocationTime": round(time.perf_counter() - started, 4)}


@router.post("/allocations/allocate", response_model=Envelope[AllocatedOut], status_code=201,
             responses={409: {"description": "INSUFFICIENT_MEMORY"}, 404: {"description": "DEVICE_NOT_FOUND"}},
             summary="Reserve a buffer: a real tensor of `size` MB on the device, every page touched")
async def allocate(body: AllocateRequest, sessions: SessionsDep, settings: SettingsDep, caller: CallerDep) -> dict:
    return ok(await run_in_threadpool(_allocate, sessions, body, settings.device_memory_headroom_mb, caller.owner_id))


@router.delete("/allocations/{allocation_id}", response_model=Envelope[ReleasedOut],
               responses={404: {"description": "ALLOCATION_NOT_FOUND"}}, summary="Free a reservation")
async def release(allocation_id: str, sessions: SessionsDep) -> dict:
    def free() -> dict[str, Any]:
        from kiln.device_memory import settle

        allocation = sessions.allocations.release(allocation_id)
        settle(allocation.torch_device)
        return {**allocation.describe(), "status": "released"}

    return ok(await run_in_threadpool(free))


def _in_background(kind: str, work: Any) -> dict[str, Any]:
    """Run ``work`` in a thread; its result is read at GET /api/memory/operations/{operationId}."""
    operation = {"operationId": f"op-{uuid.uuid4()}", "kind": kind, "status": "running", "startedAt": time.time(),
                 "result": None, "error": None}
    with _operations_lock:
        OPERATIONS[operation["operationId"]] = operation
        for stale in [k for k, v in OPERATIONS.items() if v["status"] != "running" and time.time() - v["startedAt"] > 3600]:
            del OPERATIONS[stale]

    def run() -> None:
        try:
            operation["result"], operation["status"] = work(), "completed"
        except Exception as exc:  # reported on the operation, never lost
            operation["error"], operation["status"] = f"{type(exc).__name__}: {getattr(exc, 'message', exc)}", "failed"

    threading.Thread(target=run, name=f"kiln-memory-{kind}", daemon=True).start()
    return {"operationId": operation["operationId"], "status": "running", "async": True,
            "statusUrl": f"/api/memory/operations/{operation['operationId']}"}


def _transfer(sessions: DeviceSessions, body: TransferRequest) -> dict[str, Any]:
    from kiln.device_registry import InsufficientMemory, memory_of, usable_device

    allocation = sessions.allocations.get(body.allocation_id)
    source = usable_device(body.source_device)
    target = usable_device(body.target_device)
    if allocation.device_id != source.id:
        from kiln.device_models import InvalidParameters

        raise InvalidParameters("sourceDevice", body.source_device, f"the allocation's device ({allocation.device_id})",
                                f"Invalid sourceDevice: allocation {allocation.id} is on {allocation.device_id}")
    if allocation.size_bytes / MIB > memory_of(target)["free"]:
        raise InsufficientMemory(f"Not enough memory on {target.id} for {allocation.size_bytes / MIB:.0f} MB",
                                 {"deviceId": target.id})

    def move() -> dict[str, Any]:
        return {"sourceDevice": source.id, "targetDevice": target.id, "status": "completed",
                **sessions.allocations.transfer(allocation, target.id, target.torch_device)}

    return _in_background("transfer", move) if body.run_async else move()


@router.post("/transfer", response_model=Envelope[TransferOut | OperationStarted],
             responses={404: {"description": "DEVICE_NOT_FOUND, ALLOCATION_NOT_FOUND"},
                        409: {"description": "INSUFFICIENT_MEMORY on the target"}},
             summary="Move a reservation's bytes to another device (or a new buffer on the same one), measured")
async def transfer(body: TransferRequest, sessions: SessionsDep) -> dict:
    return ok(await run_in_threadpool(_transfer, sessions, body))


def _defragment(sessions: DeviceSessions, body: DefragmentRequest) -> dict[str, Any]:
    from kiln.device_registry import find_device, list_devices

    devices = [find_device(d) for d in body.device_ids] if body.device_ids else list_devices()
    usable = [d for d in devices if d.usable]

    def work() -> dict[str, Any]:
        from kiln.device_memory import measure, settle

        before = {d.id: measure(d.torch_device) for d in usable}
        ids = {d.id for d in usable}
        freed_buffers = sessions.allocations.release_transient(ids) if body.aggressive else []
        unloaded = sessions.unload_idle(ids) if body.aggressive else []
        from kiln.upscaling import clear_cache

        upscaler_bytes = clear_cache() if body.aggressive else 0  # the loaded super-resolution networks
        done = settle()
        after = {d.id: measure(d.torch_device) for d in usable}
        return {"devices": [{"deviceId": d.id, "before": before[d.id], "after": after[d.id],
                             "bytesReturned": max(0, before[d.id] - after[d.id]),
                             "measure": "CUDA allocator" if d.type == "gpu" else "process RSS"} for d in usable],
                "bytesReturned": sum(max(0, before[i] - after[i]) for i in before), "aggressive": body.aggressive,
                "unloadedSessions": unloaded, "releasedAllocations": [a.id for a in freed_buffers],
                "unloadedUpscalerBytes": upscaler_bytes, **done,
                "status": "completed"}

    return _in_background("defragment", work) if body.run_async else work()


@router.post("/operations/defragment", response_model=Envelope[DefragmentOut | OperationStarted],
             responses={404: {"description": "DEVICE_NOT_FOUND"}},
             summary="Free what can be freed (gc, CUDA cache, malloc_trim; aggressive: idle sessions, non-persistent buffers, "
                     "loaded upscaler networks)")
async def defragment(body: DefragmentRequest, sessions: SessionsDep) -> dict:
    return ok(await run_in_threadpool(_defragment, sessions, body))


@router.get("/operations/{operation_id}", response_model=Envelope[MemoryOperationOut],
            responses={404: {"description": "No such operation"}}, summary="An async transfer's or defragment's result")
async def operation(operation_id: str) -> dict:
    with _operations_lock:
        found = OPERATIONS.get(operation_id)
    if found is None:
        raise NotFound(f"No memory operation '{operation_id}'", {"operationId": operation_id})
    return ok(dict(found))
