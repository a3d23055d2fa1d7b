"""Compute devices: GPUs through NVML (the ``nvidia-ml-py`` package) and torch, the CPU through psutil.

With no GPU (or no NVIDIA driver) every function answers an empty GPU list and a CPU recommendation;
nothing here invents a device. ``read_nvml`` only talks to the library; ``parse_gpu`` turns its raw
values into a report and is unit-tested against values recorded from real GPUs.

NVML and torch can disagree: NVML sees every NVIDIA GPU the driver knows, while a CPU build of torch
(as installed here) can use none of them. ``cuda_status`` reports the two views apart, and
``cuda_available`` means what a model needs: torch itself can run on CUDA.
"""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass, field
from typing import Any

MIB = 1024 * 1024


@dataclass
class GPUInfo:
    index: int
    name: str
    uuid: str | None
    memory_total_mb: float
    memory_free_mb: float
    memory_used_mb: float
    utilization_percent: float | None
    memory_utilization_percent: float | None
    temperature_c: float | None
    power_draw_w: float | None
    power_limit_w: float | None
    compute_capability: str | None
    driver_version: str | None
    cuda_driver_version: str | None
    supports_fp16: bool
    supports_bf16: bool
    tensor_cores: bool
    source: str = "nvml"
    score: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _get(struct: Any, name: str) -> Any:
    if struct is None:
        return None
    return struct.get(name) if isinstance(struct, dict) else getattr(struct, name, None)


def _cuda_version(raw: Any) -> str | None:
    # nvmlSystemGetCudaDriverVersion returns e.g. 12020 for CUDA 12.2
    if raw is None:
        return None
    raw = int(raw)
    return f"{raw // 1000}.{(raw % 1000) // 10}"


def parse_gpu(index: int, raw: dict[str, Any]) -> GPUInfo:
    """A ``GPUInfo`` from the raw NVML values of one device (as ``read_nvml`` collects them)."""
    memory = raw.get("memory")
    total = float(_get(memory, "total") or 0) / MIB
    free = float(_get(memory, "free") or 0) / MIB
    used = float(_get(memory, "used") or 0) / MIB
    utilization = raw.get("utilization")
    capability = raw.get("compute_capability")
    major = int(capability[0]) if capability else None
    power = raw.get("power_usage_mw")
    limit = raw.get("power_limit_mw")
    info = GPUInfo(
        index=index,
        name=_text(raw.get("name")) or f"GPU {index}",
        uuid=_text(raw.get("uuid")),
        memory_total_mb=round(total, 1),
        memory_free_mb=round(free, 1),
        memory_used_mb=round(used, 1),
        utilization_percent=_get(utilization, "gpu"),
        memory_utilization_percent=_get(utilization, "memory"),
        temperature_c=raw.get("temperature_c"),
        power_draw_w=round(power / 1000, 1) if power is not None else None,
        power_limit_w=round(limit / 1000, 1) if limit is not None else None,
        compute_capability=f"{capability[0]}.{capability[1]}" if capability else None,
        driver_version=_text(raw.get("driver_version")),
        cuda_driver_version=_cuda_version(raw.get("cuda_driver_version")),
        supports_fp16=major is not None and major >= 6,
        supports_bf16=major is not None and major >= 8,
        tensor_cores=major is not None and major >= 7,
    )
    info.score = gpu_score(info)
    return info


def gpu_score(gpu: GPUInfo) -> float:
    """Higher is better for inference: free memory first, then a newer architecture, then idleness."""
    capability = float(gpu.compute_capability) if gpu.compute_capability else 0.0
    busy = (gpu.utilization_percent or 0) / 100
    return round(gpu.memory_free_mb / 1024 * (1 + capability / 10) * (1 - 0.5 * busy), 3)


def read_nvml(nvml: Any = None) -> list[dict[str, Any]]:
    """Raw values of every NVIDIA GPU; [] when the NVML library or a driver is absent."""
    if nvml is None:
        try:
            import pynvml as nvml
        except ImportError:
            return []
    try:
        nvml.nvmlInit()
    except Exception:  # NVMLError_LibraryNotFound / DriverNotLoaded: no NVIDIA GPU here
        return []

    def call(name: str, *args: Any) -> Any:
        try:
            return getattr(nvml, name)(*args)
        except Exception:  # a field a device does not support (NVMLError_NotSupported)
            return None

    try:
        driver = call("nvmlSystemGetDriverVersion")
        cuda = call("nvmlSystemGetCudaDriverVersion")
        devices = []
        for index in range(call("nvmlDeviceGetCount") or 0):
            handle = call("nvmlDeviceGetHandleByIndex", index)
            if handle is None:
                continue
            devices.append(
                {
                    "name": call("nvmlDeviceGetName", handle),
                    "uuid": call("nvmlDeviceGetUUID", handle),
                    "memory": call("nvmlDeviceGetMemoryInfo", handle),
                    "utilization": call("nvmlDeviceGetUtilizationRates", handle),
                    "temperature_c": call("nvmlDeviceGetTemperature", handle, getattr(nvml, "NVML_TEMPERATURE_GPU", 0)),
                    "power_usage_mw": call("nvmlDeviceGetPowerUsage", handle),
                    "power_limit_mw": call("nvmlDeviceGetEnforcedPowerLimit", handle),
                    "compute_capability": call("nvmlDeviceGetCudaComputeCapability", handle),
                    "driver_version": driver,
                    "cuda_driver_version": cuda,
                }
            )
        return devices
    finally:
        call("nvmlShutdown")


def torch_gpus() -> list[GPUInfo]:
    """CUDA devices torch sees, for machines where NVML is unavailable (e.g. some containers)."""
    try:
        import torch
    except ImportError:
        return []
    if not torch.cuda.is_available():
        return []
    found = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        free, total = torch.cuda.mem_get_info(index)
        raw = {
            "name": props.name,
            "memory": {"total": total, "free": free, "used": total - free},
            "compute_capability": (props.major, props.minor),
        }
        gpu = parse_gpu(index, raw)
        gpu.source = "torch"
        found.append(gpu)
    return found


def detect_gpus(nvml: Any = None) -> list[GPUInfo]:
    gpus = [parse_gpu(i, raw) for i, raw in enumerate(read_nvml(nvml))]
    return gpus or torch_gpus()


@dataclass
class CudaStatus:
    """NVML's and torch's views of CUDA, apart. ``cuda_available`` is torch's: only then can Kiln's models use a GPU."""

    torch_cuda_available: bool
    torch_cuda_device_count: int
    torch_cuda_build: str | None  # torch.version.cuda: None for a CPU build of torch
    torch_version: str | None
    nvml_gpu_count: int
    reason: str

    @property
    def cuda_available(self) -> bool:
        return self.torch_cuda_available

    def to_dict(self) -> dict[str, Any]:
        return {"cuda_available": self.cuda_available, **asdict(self)}


def torch_cuda() -> tuple[bool, int, str | None, str | None]:
    """(torch can use CUDA, CUDA devices torch sees, torch's CUDA build version, torch version)."""
    try:
        import torch
    except ImportError:
        return False, 0, None, None
    available = bool(torch.cuda.is_available())
    return available, torch.cuda.device_count() if available else 0, torch.version.cuda, torch.__version__


def cuda_status(nvml_gpu_count: int | None = None, nvml: Any = None) -> CudaStatus:
    """Both views of CUDA; ``nvml_gpu_count`` saves a second NVML query when the caller already made one."""
    if nvml_gpu_count is None:
        nvml_gpu_count = len(read_nvml(nvml))
    available, count, build, version = torch_cuda()
    if available:
        reason = f"torch {version} (CUDA {build}) can use {count} CUDA device(s)"
    elif version is None:
        reason = "torch is not installed"
    elif build is None:
        reason = f"torch {version} is a CPU-only build: it cannot use CUDA"
    else:
        reason = f"torch {version} (CUDA {build}) finds no usable CUDA device or driver"
    if nvml_gpu_count and not available:
        reason += f", although NVML sees {nvml_gpu_count} NVIDIA GPU(s)"
    return CudaStatus(available, count, build, version, nvml_gpu_count, reason)


def mps_available() -> bool:
    try:
        import torch

        return bool(torch.backends.mps.is_available())
    except (ImportError, AttributeError):
        return False


def cpu_info() -> dict[str, Any]:
    import psutil

    flags: set[str] = set()
    model = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name") and model in ("", platform.machine()):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    memory = psutil.virtual_memory()
    return {
        "model": model,
        "architecture": platform.machine(),
        "physical_cores": psutil.cpu_count(logical=False),
        "logical_cores": psutil.cpu_count(logical=True),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else psutil.cpu_count(),
        "avx2": "avx2" in flags,
        "avx512": any(f.startswith("avx512") for f in flags),
        "memory_total_mb": round(memory.total / MIB, 1),
        "memory_available_mb": round(memory.available / MIB, 1),
    }


def best_gpu(gpus: list[GPUInfo]) -> GPUInfo | None:
    return max(gpus, key=lambda g: (g.score, -g.index)) if gpus else None


@dataclass
class DeviceRecommendation:
    device: str
    reason: str
    precision: str
    batch_size: int
    torch_threads: int
    options: dict[str, Any] = field(default_factory=dict)


def recommend(gpus: list[GPUInfo], cpu: dict[str, Any], mps: bool = False,
              torch_cuda_available: bool | None = None) -> DeviceRecommendation:
    """The device to run on. A GPU is recommended only when torch can use CUDA (``torch_cuda_available``,
    default: ask torch); GPUs NVML lists for a CPU build of torch are named in the reason, not chosen."""
    if torch_cuda_available is None:
        torch_cuda_available = torch_cuda()[0]
    best = best_gpu(gpus) if torch_cuda_available else None
    if best is not None:
        precision = "bf16" if best.supports_bf16 else "fp16" if best.supports_fp16 else "fp32"
        # A rough, memory-bound batch size: ~256 MB of activations per 32 items for small encoders.
        batch = int(max(8, min(256, best.memory_free_mb // 256 * 32)))
        return DeviceRecommendation(
            device=f"cuda:{best.index}",
            reason=f"{best.name} has the most free memory ({best.memory_free_mb:.0f} MB)",
            precision=precision,
            batch_size=batch,
            torch_threads=1,
            options={"cudnn_benchmark": True, "tensor_cores": best.tensor_cores},
        )
    if mps:
        return DeviceRecommendation("mps", "Apple Metal (MPS) is available", "fp16", 32, 1)
    cores = int(cpu.get("usable_cores") or cpu.get("logical_cores") or 1)
    if gpus:
        reason = (f"{len(gpus)} NVIDIA GPU(s) found ({', '.join(g.name for g in gpus)}), but this torch cannot use CUDA "
                  "(a CPU-only build, or no working CUDA runtime); inference runs on the CPU. Install a CUDA build of "
                  "torch to use them")
    else:
        reason = "No CUDA GPU was found (NVML and torch report none); inference runs on the CPU"
    return DeviceRecommendation(
        device="cpu",
        reason=reason,
        precision="fp32 (int8 dynamic quantization via /models/manage?action=optimize)",
        batch_size=32,
        torch_threads=cores,
        options={"avx2": cpu.get("avx2"), "avx512": cpu.get("avx512")},
    )


def device_report(nvml: Any = None) -> dict[str, Any]:
    """Everything about this machine's devices. ``cuda_available`` is torch's view (can models use CUDA);
    ``nvml_gpu_count`` is NVML's (GPUs the driver knows); ``cuda`` holds both and the reason."""
    nvml_gpus = [parse_gpu(i, raw) for i, raw in enumerate(read_nvml(nvml))]
    gpus = nvml_gpus or torch_gpus()
    cuda = cuda_status(len(nvml_gpus))
    cpu = cpu_info()
    mps = mps_available()
    try:
        import torch

        threads = torch.get_num_threads()
    except ImportError:
        threads = None
    torch_info = {"version": cuda.torch_version, "cuda_available": cuda.torch_cuda_available,
                  "cuda_version": cuda.torch_cuda_build, "threads": threads}
    return {
        "gpus": [g.to_dict() for g in gpus],
        "gpu_count": len(gpus),
        "best_gpu": best_gpu(gpus).to_dict() if gpus else None,
        "cuda_available": cuda.cuda_available,
        "torch_cuda_available": cuda.torch_cuda_available,
        "nvml_gpu_count": cuda.nvml_gpu_count,
        "cuda": cuda.to_dict(),
        "mps_available": mps,
        "cpu": cpu,
        "torch": torch_info,
        "recommendation": asdict(recommend(gpus, cpu, mps, cuda.torch_cuda_available)),
    }


def report_text(report: dict[str, Any]) -> str:
    lines = ["Kiln device report", "=================="]
    torch_info = report["torch"]
    lines.append(f"torch {torch_info['version']}  CUDA available: {torch_info['cuda_available']}  CUDA: {torch_info['cuda_version']}")
    lines.append(f"NVML GPUs: {report['nvml_gpu_count']}  ({report['cuda']['reason']})")
    cpu = report["cpu"]
    lines.append(
        f"CPU: {cpu['model']} ({cpu['physical_cores']} physical / {cpu['logical_cores']} logical cores, "
        f"AVX2 {cpu['avx2']}, AVX-512 {cpu['avx512']}), memory {cpu['memory_available_mb']:.0f} / {cpu['memory_total_mb']:.0f} MB free"
    )
    if not report["gpus"]:
        lines.append("GPUs: none found")
    for gpu in report["gpus"]:
        lines.append(
            f"GPU {gpu['index']}: {gpu['name']} (compute {gpu['compute_capability']}), memory "
            f"{gpu['memory_free_mb']:.0f} / {gpu['memory_total_mb']:.0f} MB free, utilization {gpu['utilization_percent']}%, "
            f"{gpu['temperature_c']} C, {gpu['power_draw_w']} / {gpu['power_limit_w']} W"
        )
    rec = report["recommendation"]
    lines.append(f"Recommendation: {rec['device']} — {rec['reason']}; precision {rec['precision']}, batch size {rec['batch_size']}, torch threads {rec['torch_threads']}")
    return "\n".join(lines) + "\n"
