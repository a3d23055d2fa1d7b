"""Model optimization for loaded engines: dynamic int8 quantization of the Linear layers (CPU)."""

from __future__ import annotations

import io
import time
import warnings
from typing import Any


def serialized_bytes(module: Any) -> int:
    import torch

    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    return buffer.tell()


def torch_modules(engine: Any) -> dict[str, Any]:
    import torch

    return {name: value for name, value in vars(engine).items() if isinstance(value, torch.nn.Module)}


def can_quantize(engine: Any) -> bool:
    import torch

    return any(isinstance(m, torch.nn.Linear) for module in torch_modules(engine).values() for m in module.modules())


def quantize_dynamic_int8(engine: Any) -> tuple[Any, dict[str, Any]]:
    """Replace each torch module of ``engine`` by its dynamically int8-quantized copy (Linear layers).

    Returns the engine and what changed (modules, serialized bytes before and after, seconds).
    """
    import torch

    started = time.perf_counter()
    report: dict[str, Any] = {"method": "dynamic int8 quantization (torch.ao, Linear layers)", "modules": {}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch 2.13 deprecates torch.ao quantization in favour of torchao
        for name, module in torch_modules(engine).items():
            linear = sum(isinstance(m, torch.nn.Linear) for m in module.modules())
            if not linear:
                continue
            before = serialized_bytes(module)
            quantized = torch.ao.quantization.quantize_dynamic(module, {torch.nn.Linear}, dtype=torch.qint8)
            setattr(engine, name, quantized.eval())
            report["modules"][name] = {"linear_layers": linear, "bytes_before": before, "bytes_after": serialized_bytes(quantized)}
    report["bytes_before"] = sum(m["bytes_before"] for m in report["modules"].values())
    report["bytes_after"] = sum(m["bytes_after"] for m in report["modules"].values())
    report["seconds"] = round(time.perf_counter() - started, 3)
    return engine, report
