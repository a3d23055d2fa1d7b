"""The devices seed 004 names: ``cpu-0`` (psutil) and ``gpu-N`` (NVML, else torch), what each can do as torch
reports it on that device, the choice of a device for an operation, and ``KILN_DEVICE``.

A GPU that NVML lists but a CPU build of torch cannot use is listed (it exists) but not usable: sessions and
reservations refuse it with the reason. Nothing here invents a device.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from kiln.devices import MIB, GPUInfo, cpu_info, cuda_status, detect_gpus
from kiln.errors import BadRequest, Conflict, KilnError, NotFound

CPU_ID = "cpu-0"


class DeviceNotFound(NotFound):
    code = "DEVICE_NOT_FOUND"

    def __init__(self, device_id: str, available: list[str]):
        super().__init__(f"Device with ID '{device_id}' not found",
                         {"deviceId": device_id, "availableDevices": available})


class DeviceBusy(Conflict):
    code = "DEVICE_BUSY"

    def __init__(self, device_id: str, operation: str, reason: str, available_at: str | None = None):
        super().__init__(f"Device {device_id} is currently busy with another operation: {reason}",
                         {"deviceId": device_id, "currentOperation": operation, "estimatedAvailableAt": available_at})


class DeviceUnusable(KilnError):
    """A device that exists but that this torch cannot run on (a CPU build of torch and an NVIDIA GPU)."""

    status_code = 409
    code = "DEVICE_UNAVAILABLE"


class InsufficientMemory(Conflict):
    code = "INSUFFICIENT_MEMORY"


@dataclass
class Device:
    id: str  # cpu-0 | gpu-N
    type: str  # cpu | gpu
    name: str
    torch_device: str  # cpu | cuda:N
    memory_total_mb: float
    memory_available_mb: float
    usable: bool  # torch can run on it
    reason: str = ""
    cores: int | None = None
    gpu: GPUInfo | None = field(default=None, repr=False)


def cpu_device() -> Device:
    cpu = cpu_info()
    return Device(CPU_ID, "cpu", cpu["model"], "cpu", cpu["memory_total_mb"], cpu["memory_available_mb"], True,
                  "torch runs on the CPU", cpu["usable_cores"])


def gpu_devices() -> list[Device]:
    gpus = detect_gpus()
    status = cuda_status(len(gpus))
    devices = []
    for gpu in gpus:
        usable = status.cuda_available and gpu.index < status.torch_cuda_device_count
        devices.append(Device(f"gpu-{gpu.index}", "gpu", gpu.name, f"cuda:{gpu.index}", gpu.memory_total_mb,
                              gpu.memory_free_mb, usable, status.reason, None, gpu))
    return devices


def list_devices() -> list[Device]:
    return [cpu_device(), *gpu_devices()]


def find_device(device_id: str) -> Device:
    """The device ``device_id`` names; DeviceNotFound (404) listing the ones there are."""
    devices = list_devices()
    for device in devices:
        if device.id == device_id:
            return device
    raise DeviceNotFound(device_id, [d.id for d in devices])


def usable_device(device_id: str) -> Device:
    device = find_device(device_id)
    if not device.usable:
        raise DeviceUnusable(f"Device {device_id} ({device.name}) exists but this server cannot run models on it: "
                             f"{device.reason}", {"deviceId": device_id, "reason": device.reason})
    return device


def device_id_for(torch_device: str) -> str:
    """cpu -> cpu-0, cuda:N -> gpu-N (cuda -> gpu-0)."""
    if torch_device == "cpu":
        return CPU_ID
    index = torch_device.partition(":")[2] or "0"
    return f"gpu-{index}"


# --- what a device can do, as torch reports it there ---

@lru_cache(maxsize=16)
def _precisions(torch_device: str) -> dict[str, bool]:
    import torch

    def works(dtype: Any) -> bool:  # a small matmul in that dtype: what this torch really does on the device
        try:
            x = torch.ones((4, 4), dtype=dtype, device=torch_device)
            return bool(torch.isfinite((x @ x).float()).all())
        except (RuntimeError, TypeError):
            return False

    if torch_device.startswith("cuda"):
        index = torch.device(torch_device).index or 0
        major, minor = torch.cuda.get_device_capability(index)
        int8 = (major, minor) >= (6, 1)  # dp4a: int8 dot products
        bf16 = bool(torch.cuda.is_bf16_supported())
    else:
        int8 = bool(set(torch.backends.quantized.supported_engines) - {"none"})  # fbgemm/x86/qnnpack kernels
        bf16 = works(torch.bfloat16)
    return {"fp16": works(torch.float16), "bf16": bf16, "fp32": works(torch.float32), "int8": int8}


def capabilities(device: Device) -> dict[str, Any]:
    """fp16/bf16/fp32/int8 as torch runs them on the device, CUDA, DirectML (not in this torch)."""
    if not device.usable:
        return {"fp16": False, "bf16": False, "fp32": False, "int8": False, "cuda": False, "directml": False,
                "reason": device.reason}
    import torch

    found = dict(_precisions(device.torch_device))
    found["cuda"] = device.type == "gpu"
    found["directml"] = False  # torch-directml is a separate Windows package; this server does not use it
    if device.type == "cpu":
        found["cpuCapability"] = torch.backends.cpu.get_cpu_capability()
    else:
        major, minor = torch.cuda.get_device_capability(torch.device(device.torch_device).index or 0)
        found["computeCapability"] = f"{major}.{minor}"
    return found


def max_sessions(device: Device, configured: int, per_session_mb: int) -> int:
    """Sessions a device holds at once: the setting, else one per ``per_session_mb`` of its memory (1..8)."""
    if configured:
        return configured
    return int(max(1, min(8, device.memory_total_mb // per_session_mb)))


# --- KILN_DEVICE and the choice of a device ---

def resolve_setting(setting: str) -> tuple[str, str]:
    """(torch device, why) for KILN_DEVICE=auto|cpu|cuda[:N]; a CUDA device this torch cannot use is a 400."""
    status = cuda_status()
    if setting == "cpu":
        return "cpu", "KILN_DEVICE=cpu"
    if setting.startswith("cuda"):
        index = int(setting.partition(":")[2] or 0)
        if not status.cuda_available or index >= status.torch_cuda_device_count:
            raise BadRequest(f"KILN_DEVICE={setting}, but {status.reason}", {"setting": setting})
        return f"cuda:{index}", f"KILN_DEVICE={setting}"
    gpus = [d for d in gpu_devices() if d.usable]
    if gpus:
        best = max(gpus, key=lambda d: d.memory_available_mb)
        return best.torch_device, f"KILN_DEVICE=auto: {best.name} has the most free memory ({best.memory_available_mb:.0f} MB)"
    return "cpu", f"KILN_DEVICE=auto: the CPU, since {status.reason}"


def choose(devices: list[Device], sessions_on: dict[str, int], limit_for: Any, min_memory_mb: float,
           preferred_type: str | None, operation: str) -> tuple[Device, str]:
    """The device for an operation: usable, with ``min_memory_mb`` available and a free session slot; the
    preferred type when one fits, then the most available memory. NotFound/DeviceBusy when none fits."""
    usable = [d for d in devices if d.usable]
    roomy = [d for d in usable if d.memory_available_mb >= min_memory_mb]
    if not roomy:
        raise NotFound(f"No device has {min_memory_mb:.0f} MB available for {operation}",
                       {"minMemory": min_memory_mb, "devices": {d.id: round(d.memory_available_mb) for d in usable},
                        "unusable": {d.id: d.reason for d in devices if not d.usable}})
    free = [d for d in roomy if sessions_on.get(d.id, 0) < limit_for(d)]
    if not free:
        first = roomy[0]
        raise DeviceBusy(first.id, "model sessions", f"every device with {min_memory_mb:.0f} MB available holds "
                         "as many sessions as it can; unload one (DELETE /api/processing/sessions/{id})")
    typed = [d for d in free if preferred_type and d.type == preferred_type]
    pick = max(typed or free, key=lambda d: (d.type == "gpu", d.memory_available_mb))
    reasons = [f"{pick.name} ({pick.id}) has {pick.memory_available_mb:.0f} MB available"]
    if preferred_type and not typed:
        wanted = [d for d in devices if d.type == preferred_type]
        why = (wanted[0].reason if wanted and not wanted[0].usable else
               f"no {preferred_type} device fits" if wanted else f"this machine has no {preferred_type} device")
        reasons.append(f"preferred type {preferred_type} not used: {why}")
    return pick, "; ".join(reasons)


def memory_of(device: Device) -> dict[str, float]:
    """total/used/free in MB: psutil for the CPU, the CUDA driver for a GPU."""
    if device.type == "gpu" and device.usable:
        import torch

        free, total = torch.cuda.mem_get_info(torch.device(device.torch_device))
        return {"total": round(total / MIB, 1), "used": round((total - free) / MIB, 1), "free": round(free / MIB, 1)}
    return {"total": device.memory_total_mb, "used": round(device.memory_total_mb - device.memory_available_mb, 1),
            "free": device.memory_available_mb}
