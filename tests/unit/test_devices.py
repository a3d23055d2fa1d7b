"""Device detection: NVML parsing against values recorded from real GPUs, and the no-GPU answer here."""

from types import SimpleNamespace

import pytest

from kiln import devices

# Raw values as pynvml returned them (structs with attributes; older pynvml returned names as bytes).
A100 = {
    "name": "NVIDIA A100-SXM4-40GB",
    "uuid": "GPU-5a0e5f5e-9d43-3c59-0c5d-d3c6b2fa4f44",
    "memory": SimpleNamespace(total=42949672960, free=42314694656, used=634978304),
    "utilization": SimpleNamespace(gpu=0, memory=0),
    "temperature_c": 31,
    "power_usage_mw": 52613,
    "power_limit_mw": 400000,
    "compute_capability": (8, 0),
    "driver_version": "535.104.05",
    "cuda_driver_version": 12020,
}
T4 = {
    "name": b"Tesla T4",
    "uuid": b"GPU-0f2a6e1c-8b55-92a7-2c0e-7e7b4a1f9d10",
    "memory": SimpleNamespace(total=16106127360, free=11393302528, used=4712824832),
    "utilization": SimpleNamespace(gpu=87, memory=41),
    "temperature_c": 64,
    "power_usage_mw": 61187,
    "power_limit_mw": 70000,
    "compute_capability": (7, 5),
    "driver_version": b"470.82.01",
    "cuda_driver_version": 11040,
}
P100_PARTIAL = {  # power and utilization are NVML_ERROR_NOT_SUPPORTED on some boards
    "name": "Tesla P100-PCIE-16GB",
    "memory": SimpleNamespace(total=17071734784, free=17069309952, used=2424832),
    "compute_capability": (6, 0),
}


def test_parse_a100():
    gpu = devices.parse_gpu(0, A100)
    assert gpu.name == "NVIDIA A100-SXM4-40GB" and gpu.compute_capability == "8.0"
    assert gpu.memory_total_mb == 40960.0 and gpu.memory_free_mb == pytest.approx(40354.5, abs=0.1)
    assert gpu.power_draw_w == 52.6 and gpu.power_limit_w == 400.0 and gpu.temperature_c == 31
    assert gpu.cuda_driver_version == "12.2" and gpu.driver_version == "535.104.05"
    assert gpu.supports_bf16 and gpu.supports_fp16 and gpu.tensor_cores


def test_parse_t4_with_bytes_names():
    gpu = devices.parse_gpu(1, T4)
    assert gpu.name == "Tesla T4" and gpu.uuid.startswith("GPU-0f2a")
    assert gpu.memory_total_mb == 15360.0 and gpu.utilization_percent == 87 and gpu.memory_utilization_percent == 41
    assert gpu.cuda_driver_version == "11.4" and gpu.tensor_cores and not gpu.supports_bf16


def test_parse_tolerates_unsupported_fields():
    gpu = devices.parse_gpu(2, P100_PARTIAL)
    assert gpu.power_draw_w is None and gpu.utilization_percent is None and gpu.temperature_c is None
    assert gpu.supports_fp16 and not gpu.tensor_cores


def test_best_gpu_prefers_free_memory_and_recommendation_follows():
    gpus = [devices.parse_gpu(0, T4), devices.parse_gpu(1, A100)]
    assert devices.best_gpu(gpus).name == "NVIDIA A100-SXM4-40GB"
    rec = devices.recommend(gpus, devices.cpu_info(), torch_cuda_available=True)
    assert rec.device == "cuda:1" and rec.precision == "bf16"


class ReplayNVML:
    """Replays recorded values through pynvml's function names, raising like NVML where unsupported."""

    NVML_TEMPERATURE_GPU = 0

    class NVMLError(Exception):
        pass

    def __init__(self, recorded):
        self.recorded = recorded
        self.shutdown = False

    def nvmlInit(self):
        pass

    def nvmlShutdown(self):
        self.shutdown = True

    def nvmlSystemGetDriverVersion(self):
        return self.recorded[0]["driver_version"]

    def nvmlSystemGetCudaDriverVersion(self):
        return self.recorded[0]["cuda_driver_version"]

    def nvmlDeviceGetCount(self):
        return len(self.recorded)

    def nvmlDeviceGetHandleByIndex(self, index):
        return index

    def _field(self, handle, key):
        if key not in self.recorded[handle]:
            raise self.NVMLError("Not Supported")
        return self.recorded[handle][key]

    def nvmlDeviceGetName(self, h):
        return self._field(h, "name")

    def nvmlDeviceGetUUID(self, h):
        return self._field(h, "uuid")

    def nvmlDeviceGetMemoryInfo(self, h):
        return self._field(h, "memory")

    def nvmlDeviceGetUtilizationRates(self, h):
        return self._field(h, "utilization")

    def nvmlDeviceGetTemperature(self, h, sensor):
        return self._field(h, "temperature_c")

    def nvmlDeviceGetPowerUsage(self, h):
        return self._field(h, "power_usage_mw")

    def nvmlDeviceGetEnforcedPowerLimit(self, h):
        return self._field(h, "power_limit_mw")

    def nvmlDeviceGetCudaComputeCapability(self, h):
        return self._field(h, "compute_capability")


def test_read_nvml_collects_every_device_and_shuts_down():
    nvml = ReplayNVML([A100, T4])
    gpus = devices.detect_gpus(nvml)
    assert [g.name for g in gpus] == ["NVIDIA A100-SXM4-40GB", "Tesla T4"] and nvml.shutdown
    assert gpus[1].driver_version == "535.104.05"  # the system driver applies to every device


def test_this_machine_has_no_gpu_and_gets_a_cpu_recommendation():
    if devices.read_nvml() or devices.torch_gpus():
        pytest.skip("this machine has a GPU")
    report = devices.device_report()  # the real pynvml: its library is absent here
    assert report["gpus"] == [] and report["best_gpu"] is None
    assert report["nvml_gpu_count"] == 0 and report["cuda_available"] is False
    assert report["recommendation"]["device"] == "cpu" and report["cpu"]["logical_cores"] >= 1
    text = devices.report_text(report)
    assert "GPUs: none found" in text and "Recommendation: cpu" in text


def test_gpus_nvml_sees_are_not_offered_when_torch_cannot_use_cuda():
    """This machine's torch is a CPU build: NVML's GPUs are reported apart, never recommended or called usable."""
    available, _, build, _ = devices.torch_cuda()
    if available:
        pytest.skip("this torch can use CUDA")
    report = devices.device_report(ReplayNVML([A100, T4]))
    assert report["nvml_gpu_count"] == 2 and report["gpu_count"] == 2
    assert report["cuda_available"] is False and report["torch_cuda_available"] is False
    assert report["cuda"]["torch_cuda_build"] == build and report["torch"]["cuda_available"] is False
    assert "NVML sees 2 NVIDIA GPU(s)" in report["cuda"]["reason"]
    recommendation = report["recommendation"]
    assert recommendation["device"] == "cpu" and "cannot use CUDA" in recommendation["reason"]
    assert "NVIDIA A100-SXM4-40GB" in recommendation["reason"]
    assert devices.recommend([devices.parse_gpu(0, A100)], devices.cpu_info()).device == "cpu"  # default: ask torch
    assert "NVML GPUs: 2" in devices.report_text(report)


def test_cuda_status_reports_both_views():
    status = devices.cuda_status(nvml_gpu_count=0)
    torch_view = devices.torch_cuda()[0]
    assert status.cuda_available is torch_view and status.to_dict()["cuda_available"] is torch_view
    assert status.nvml_gpu_count == 0 and status.reason
    assert devices.cuda_status(nvml=ReplayNVML([T4])).nvml_gpu_count == 1
