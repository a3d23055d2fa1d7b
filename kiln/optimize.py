"""Optimized variants of a stored model, each benchmarked against eager fp32 on the same inputs.

Variants: ONNX (torch's dynamo exporter; the TorchScript exporter gives wrong outputs for MiniLM under
torch 2.13 + transformers 5) run with onnxruntime, and that graph with dynamic int8 quantization
(per-channel QInt8 weights; per-tensor loses too much accuracy). Measured per variant: throughput,
p50 batch latency, file size, and agreement with eager (cosine for embeddings; prediction agreement and
accuracy delta for classifiers). Every variant runs on the same pre-tokenized batches, in interleaved
rounds; the best round of each counts.
"""

from __future__ import annotations

import copy
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kiln.errors import KilnError

RECIPE_VERSION = "1"
SUPPORTED_TASKS = ("sentence-embedding", "text-classification", "classification")
FP32_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
REPORT_FILE = "optimization.json"


@dataclass
class VariantResult:
    name: str
    throughput: float  # items per second
    p50_ms: float  # median latency of one batch
    size_mb: float
    speedup: float = 1.0
    agreement: dict[str, float] = field(default_factory=dict)


@dataclass
class OptimizationReport:
    task: str
    items: int
    batch_size: int
    threads: int
    variants: list[VariantResult]

    def variant(self, name: str) -> VariantResult:
        return next(v for v in self.variants if v.name == name)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        """A markdown table for Dagster metadata and the report."""
        keys = sorted({k for v in self.variants for k in v.agreement})
        lines = [
            "| variant | items/s | speedup | p50 ms/batch | size MB | " + " | ".join(keys) + " |",
            "|---" * (5 + len(keys)) + "|",
        ]
        for v in self.variants:
            cells = [v.name, f"{v.throughput:.1f}", f"{v.speedup:.2f}x", f"{v.p50_ms:.1f}", f"{v.size_mb:.1f}"]
            cells += [f"{v.agreement[k]:.4f}" if k in v.agreement else "" for k in keys]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


# --- wrappers: the exact computation each engine performs, as a module with tensor inputs ---


def _wrappers():
    import torch

    class SentenceEmbedding(torch.nn.Module):
        def __init__(self, model, normalize: bool):
            super().__init__()
            self.model, self.normalize = model, normalize

        def forward(self, input_ids, attention_mask):
            # keywords: transformers 5 rejects extra positional arguments
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1) if self.normalize else pooled

    class TextProbabilities(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            return torch.softmax(self.model(input_ids=input_ids, attention_mask=attention_mask).logits, dim=-1)

    class VectorProbabilities(torch.nn.Module):
        def __init__(self, module, scale: float):
            super().__init__()
            self.module, self.scale = module, scale

        def forward(self, features):
            return torch.softmax(self.module(features * self.scale), dim=-1)

    return SentenceEmbedding, TextProbabilities, VectorProbabilities


def eager_module(engine) -> Any:
    """The engine's forward pass as one torch module (what gets exported)."""
    SentenceEmbedding, TextProbabilities, VectorProbabilities = _wrappers()
    if engine.task == "sentence-embedding":
        return SentenceEmbedding(engine.model, engine.normalize).eval()
    if engine.task == "text-classification":
        return TextProbabilities(engine.model).eval()
    if engine.task == "classification":
        return VectorProbabilities(engine.module, engine.scale).eval()
    raise KilnError(f"No optimization for task '{engine.task}'. Supported tasks: {list(SUPPORTED_TASKS)}")


def make_batches(engine, items: list[Any], batch_size: int) -> list[dict[str, Any]]:
    """Model inputs (numpy) per batch, built once so every variant sees exactly the same tensors."""
    import numpy as np

    batches = []
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        if engine.task == "classification":
            batches.append({"features": np.asarray(chunk, dtype=np.float32)})
        else:
            encoded = engine.tokenizer(chunk, padding=True, truncation=True, max_length=256, return_tensors="np")
            batches.append(
                {"input_ids": encoded["input_ids"].astype(np.int64), "attention_mask": encoded["attention_mask"].astype(np.int64)}
            )
    return batches


def for_export(module):
    """A copy of ``module`` to export (the eager one stays untouched), with plain matmul-softmax attention.

    Exported from SDPA, the graph quantizes into a slower int8 model: measured on MiniLM, int8 from the
    eager-attention graph ran 2.16x eager fp32 against 1.82x (same cosine, 0.9916).
    """
    exported = copy.deepcopy(module)
    for child in exported.modules():
        if hasattr(child, "set_attn_implementation") and getattr(child, "config", None) is not None:
            child.set_attn_implementation("eager")
            break
    return exported


def export_onnx(module, example: dict[str, Any], path: Path) -> None:
    """Dynamo export with a dynamic batch (and sequence) axis; weights go to ``<file>.data``."""
    import torch

    names = list(example)
    tensors = tuple(torch.from_numpy(example[name]) for name in names)
    batch = torch.export.Dim("batch", min=1, max=4096)
    dynamic = {name: {0: batch} for name in names}
    if "input_ids" in names:
        sequence = torch.export.Dim("sequence", min=1, max=512)
        dynamic = {name: {0: batch, 1: sequence} for name in names}
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.inference_mode(False), torch.no_grad():
        program = torch.onnx.export(
            module, tensors, dynamo=True, input_names=names, output_names=["output"], dynamic_shapes=dynamic
        )
    program.save(str(path), external_data=True)


def quantize_int8(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), per_channel=True, weight_type=QuantType.QInt8)


def onnx_runner(path: Path, threads: int) -> Callable[[dict[str, Any]], Any]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda batch: session.run(None, batch)[0]


def torch_runner(module) -> Callable[[dict[str, Any]], Any]:
    import torch

    def run(batch: dict[str, Any]):
        with torch.inference_mode():
            return module(**{k: torch.from_numpy(v) for k, v in batch.items()}).numpy()

    return run


def time_variant(run: Callable[[dict[str, Any]], Any], batches: list[dict[str, Any]]) -> tuple[Any, float, float]:
    """(concatenated outputs, items/s, p50 ms per batch) after one warm-up batch."""
    import numpy as np

    run(batches[0])
    outputs, latencies = [], []
    started = time.perf_counter()
    for batch in batches:
        t = time.perf_counter()
        outputs.append(run(batch))
        latencies.append((time.perf_counter() - t) * 1000)
    total = time.perf_counter() - started
    n = sum(len(next(iter(b.values()))) for b in batches)
    return np.concatenate(outputs), n / total, statistics.median(latencies)


def agreement(task: str, reference, outputs, labels: list[int] | None) -> dict[str, float]:
    import numpy as np

    if task == "sentence-embedding":
        ref = reference / np.linalg.norm(reference, axis=1, keepdims=True)
        out = outputs / np.linalg.norm(outputs, axis=1, keepdims=True)
        cosine = (ref * out).sum(1)
        return {"mean_cosine": float(cosine.mean()), "min_cosine": float(cosine.min())}
    result = {"prediction_agreement": float((reference.argmax(1) == outputs.argmax(1)).mean())}
    if labels is not None:
        gold = np.asarray(labels)
        result["accuracy"] = float((outputs.argmax(1) == gold).mean())
        result["accuracy_delta"] = result["accuracy"] - float((reference.argmax(1) == gold).mean())
    return result


def optimize(
    engine,
    model_dir: Path,
    out_dir: Path,
    items: list[Any],
    labels: list[int] | None = None,
    batch_size: int = 32,
    threads: int = 0,
    log: Callable[[str], None] = print,
    rounds: int = 3,
) -> OptimizationReport:
    """Export ``engine``'s model to ONNX fp32 and int8 in ``out_dir`` and benchmark both against eager."""
    import torch

    if not items:
        raise KilnError("No benchmark inputs")
    threads = threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    module = eager_module(engine)
    batches = make_batches(engine, items, batch_size)
    fp32, int8 = out_dir / FP32_FILE, out_dir / INT8_FILE
    started = time.perf_counter()
    export_onnx(for_export(module), batches[0], fp32)
    log(f"exported ONNX in {time.perf_counter() - started:.1f} s")
    quantize_int8(fp32, int8)

    runners = {"eager-fp32": torch_runner(module), "onnx-fp32": onnx_runner(fp32, threads), "onnx-int8": onnx_runner(int8, threads)}
    sizes = {
        "eager-fp32": sum(f.stat().st_size for f in model_dir.glob("*.safetensors"))
        or sum(p.numel() * p.element_size() for p in module.parameters()),
        "onnx-fp32": fp32.stat().st_size + _external_size(fp32),
        "onnx-int8": int8.stat().st_size + _external_size(int8),
    }
    # Interleaved rounds, best round per variant: on a shared CPU a neighbour's burst then slows one
    # round of every variant instead of deciding the ratio.
    best: dict[str, tuple[float, float]] = {}
    outputs: dict[str, Any] = {}
    for _ in range(max(rounds, 1)):
        for name, run in runners.items():
            outputs[name], rate, p50 = time_variant(run, batches)
            if name not in best or rate > best[name][0]:
                best[name] = (rate, p50)
    reference, eager_rate = outputs["eager-fp32"], best["eager-fp32"][0]
    variants = []
    for name in runners:
        rate, p50 = best[name]
        variants.append(VariantResult(name, rate, p50, sizes[name] / 1e6, rate / eager_rate, agreement(engine.task, reference, outputs[name], labels)))
        log(f"{name}: {rate:.1f} items/s ({rate / eager_rate:.2f}x eager), {variants[-1].agreement}")
    report = OptimizationReport(engine.task, len(items), batch_size, threads, variants)
    (out_dir / REPORT_FILE).write_text(json.dumps(report.to_json(), indent=2))
    return report


def _external_size(path: Path) -> int:
    data = path.with_name(path.name + ".data")
    return data.stat().st_size if data.exists() else 0
