"""Seed 004's device routes: the devices there are (cpu-0 from psutil, gpu-N from NVML), what each can do as
torch reports it, the device for an operation, and a status summary (the document's auth examples call it)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from bentos.api.devices.deps import CallerDep, SessionsDep, SettingsDep
from bentos.api.devices.route import DevicesRoute, Envelope, ok
from bentos.api.devices.schemas import CapabilitiesOut, DeviceOut, DeviceStatusOut, OptimalOut, OptimalRequest
from kiln.device_sessions import DeviceSessions

router = APIRouter(prefix="/api/device", tags=["devices (seed 004)"], route_class=DevicesRoute)
NOT_FOUND = {404: {"description": "DEVICE_NOT_FOUND, with the devices there are"}}
OPERATIONS = ["inference", "postprocessing", "model_loading"]


def device_row(sessions: DeviceSessions, device: Any, held: int) -> dict[str, Any]:
    limit = sessions.limit(device)
    return {"id": device.id, "name": device.name, "type": device.type, "isAvailable": device.usable and held < limit,
            "memoryTotal": int(device.memory_total_mb), "memoryAvailable": int(device.memory_available_mb),
            "cores": device.cores, "sessions": held, "maxConcurrentSessions": limit, "usable": device.usable,
            "reason": device.reason}


def _listing(sessions: DeviceSessions) -> list[dict[str, Any]]:
    from kiln.device_registry import list_devices

    counts = sessions.counts()
    return [device_row(sessions, d, counts.get(d.id, 0)) for d in list_devices()]


@router.get("/list", response_model=Envelope[list[DeviceOut]], summary="The devices: cpu-0 and every GPU NVML sees")
async def list_devices(sessions: SessionsDep) -> dict:
    return ok(await run_in_threadpool(_listing, sessions))


def _capabilities(sessions: DeviceSessions, device_id: str, store_dir: Any) -> dict[str, Any]:
    from kiln.device_models import stored_models
    from kiln.device_registry import capabilities, find_device

    device = find_device(device_id)
    types = sorted({m.model_type for m in stored_models(store_dir).values()
                    if m.kind == "generation" or device.type == "cpu"}) if device.usable else []  # engines: CPU
    return {"deviceId": device.id, "supportedOperations": OPERATIONS if device.usable else [],
            "supportedModelTypes": types, "maxConcurrentSessions": sessions.limit(device),
            "capabilities": capabilities(device)}


@router.get("/capabilities/{device_id}", response_model=Envelope[CapabilitiesOut], responses=NOT_FOUND,
            summary="fp16/bf16/int8 as torch runs them there, CUDA, the model types the store holds, session slots")
async def device_capabilities(device_id: str, sessions: SessionsDep, settings: SettingsDep) -> dict:
    return ok(await run_in_threadpool(_capabilities, sessions, device_id, settings.model_store_dir))


def _optimal(sessions: DeviceSessions, body: OptimalRequest) -> dict[str, Any]:
    from kiln.device_registry import choose, list_devices

    devices = list_devices()
    pick, reason = choose(devices, sessions.counts(), sessions.limit, body.requirements.min_memory,
                          body.requirements.preferred_type, body.operation)
    return {"deviceId": pick.id, "device": device_row(sessions, pick, sessions.counts().get(pick.id, 0)),
            "reason": reason, "operation": body.operation, "modelType": body.model_type,
            "alternatives": [d.id for d in devices if d.usable and d.id != pick.id]}


@router.post("/optimal", response_model=Envelope[OptimalOut],
             responses={404: {"description": "No device has the memory asked for"},
                        409: {"description": "DEVICE_BUSY: every fitting device holds its most sessions"}},
             summary="The device for an operation, with the reason")
async def optimal_device(body: OptimalRequest, sessions: SessionsDep) -> dict:
    return ok(await run_in_threadpool(_optimal, sessions, body))


def _status(sessions: DeviceSessions, setting: str) -> dict[str, Any]:
    from kiln.device_registry import resolve_setting
    from kiln.devices import cuda_status

    chosen, why = resolve_setting(setting)
    devices = _listing(sessions)
    running = {s.device_id for s in sessions.all() if s.running}
    for row in devices:
        row["status"] = "busy" if row["id"] in running else "idle" if row["usable"] else "unusable"
    status = cuda_status()
    return {"devices": devices, "sessions": len(sessions.all()), "kilnDevice": {"setting": setting, "device": chosen,
                                                                               "reason": why},
            "torch": {"version": status.torch_version, "cudaBuild": status.torch_cuda_build,
                      "cudaAvailable": status.cuda_available, "reason": status.reason}}


@router.get("/status", response_model=Envelope[DeviceStatusOut],
            summary="Devices, their sessions, and where KILN_DEVICE puts Kiln's models (and why)")
async def device_status(sessions: SessionsDep, settings: SettingsDep, caller: CallerDep) -> dict:
    data = await run_in_threadpool(_status, sessions, settings.device)
    principal = caller.principal
    data["caller"] = {"kind": principal.kind, "name": principal.name} if principal else None
    return ok(data)
