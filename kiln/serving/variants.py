"""Which variant of a model to serve: eager fp32 torch, or the ONNX fp32 / int8 export the pipeline measured.

The pipeline's ``optimized_model`` stage measures every variant against eager fp32; at packaging time
``select_variant`` applies the catalog entry's agreement gate and the result goes into the bento model as
``optimized/variants.json`` beside the ONNX files. At serve time ``KILN_SERVE_VARIANT`` picks, per model or
globally: ``auto`` (the gated choice), ``eager``, ``onnx-fp32`` or ``onnx-int8``. A variant that is not
packaged or does not load (onnxruntime missing, a broken file) falls back to eager with a logged warning,
and the engine says so (``variant: eager-fp32`` and the reason): never a silent wrong answer.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kiln.errors import BadRequest

log = logging.getLogger("kiln.variants")

EAGER = "eager-fp32"
ONNX_VARIANTS = {"onnx-fp32": "model.onnx", "onnx-int8": "model.int8.onnx"}
VARIANTS = (EAGER, *ONNX_VARIANTS)
CHOICES = ("auto", "eager", *ONNX_VARIANTS)
FOLDER = "optimized"  # in a bento model; never "onnx": a folder of that name shadows the onnx package
MANIFEST = "variants.json"


@dataclass(frozen=True)
class Gate:
    """Agreement a variant needs with eager fp32 to be served by default (thresholds from the catalog)."""

    min_mean_cosine: float = 0.99
    min_min_cosine: float = 0.97
    max_accuracy_drop: float = 0.01

    def check(self, task: str, agreement: dict[str, float]) -> tuple[bool, str]:
        if task == "sentence-embedding":
            mean, low = agreement.get("mean_cosine"), agreement.get("min_cosine")
            if mean is None or low is None:
                return False, "no cosine measured"
            ok = mean >= self.min_mean_cosine and low >= self.min_min_cosine
            return ok, (f"mean cosine {mean:.4f} (>= {self.min_mean_cosine}), min {low:.4f} (>= {self.min_min_cosine})")
        if "accuracy_delta" in agreement:
            delta = agreement["accuracy_delta"]
            return delta >= -self.max_accuracy_drop, f"accuracy change {delta:+.4f} (>= -{self.max_accuracy_drop})"
        if "prediction_agreement" in agreement:  # no labels: how often it predicts what eager predicts
            share = agreement["prediction_agreement"]
            return share >= 1 - self.max_accuracy_drop, f"prediction agreement {share:.4f} (>= {1 - self.max_accuracy_drop})"
        return False, "no agreement measured"


def select_variant(report: dict[str, Any], gate: Gate) -> dict[str, Any]:
    """The manifest for a measured ``kiln.optimize`` report: every variant with its gate verdict, and
    ``selected``: the fastest variant that passes the gate and beats eager (else eager)."""
    task = report["task"]
    variants: dict[str, Any] = {}
    for v in report["variants"]:
        passed, reason = (True, "the reference") if v["name"] == EAGER else gate.check(task, v["agreement"])
        variants[v["name"]] = {
            "speedup": round(v["speedup"], 3), "throughput": round(v["throughput"], 1), "agreement": v["agreement"],
            "gate_passed": passed, "gate": reason, "file": ONNX_VARIANTS.get(v["name"]),
        }
    candidates = [n for n, v in variants.items() if n != EAGER and v["gate_passed"] and v["speedup"] > 1.0]
    selected = max(candidates, key=lambda n: variants[n]["speedup"]) if candidates else EAGER
    return {"task": task, "gate": asdict(gate), "selected": selected, "variants": variants,
            "measured": {"items": report.get("items"), "batch_size": report.get("batch_size"), "threads": report.get("threads")}}


def read_manifest(model_dir: Path) -> dict[str, Any] | None:
    path = Path(model_dir) / FOLDER / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else None


def parse_choice(setting: str, model: str) -> str:
    """``KILN_SERVE_VARIANT`` for ``model``: ``auto`` | ``eager`` | ``onnx-fp32`` | ``onnx-int8``, globally or
    per model, e.g. ``onnx-int8`` or ``auto,minilm=eager,example=onnx-fp32``."""
    default, per_model = "auto", {}
    for part in (p.strip() for p in (setting or "").split(",")):
        if not part:
            continue
        name, _, value = part.rpartition("=")
        value = value.strip()
        if value not in CHOICES:
            raise BadRequest(f"KILN_SERVE_VARIANT: unknown variant {value!r} in {part!r}; choose one of {list(CHOICES)}")
        if name:
            per_model[name.strip()] = value
        else:
            default = value
    return per_model.get(model, default)


def wanted_variant(choice: str, manifest: dict[str, Any] | None) -> str:
    """The variant ``choice`` asks for, given what was packaged (``auto``: the gated selection)."""
    if choice == "eager":
        return EAGER
    if choice == "auto":
        return manifest["selected"] if manifest else EAGER
    return choice


def describe_variant(name: str, manifest: dict[str, Any] | None) -> dict[str, Any]:
    """What /models shows about the served variant: its measured speed-up and agreement."""
    measured = (manifest or {}).get("variants", {}).get(name, {})
    return {
        "variant": name,
        "variant_speedup": measured.get("speedup", 1.0 if name == EAGER else None),
        "variant_agreement": measured.get("agreement", {}),
        "variant_gate_passed": measured.get("gate_passed", name == EAGER),
        "gated_variant": (manifest or {}).get("selected", EAGER),
    }


def load_variant(
    name: str, task: str, model_dir: Path, variant: str, load_eager: Callable[[], Any], threads: int = 0
) -> Any:
    """An engine serving ``variant`` of the model in ``model_dir``; eager (with a logged warning and the
    reason in its description) when that variant is not packaged or fails to load."""
    manifest = read_manifest(model_dir)
    fallback = None
    if variant != EAGER:
        try:
            engine = _load_onnx(name, task, Path(model_dir), variant, threads)
            engine.variant_info = describe_variant(variant, manifest)
            return engine
        except VariantUnavailable as exc:
            fallback = str(exc)
        except ImportError as exc:
            fallback = f"variant {variant} needs onnxruntime, which is not installed (pip install onnxruntime): {exc}"
        except Exception as exc:  # a broken file, an unsupported task
            fallback = f"variant {variant} failed to load: {type(exc).__name__}: {exc}"
        log.warning(f"model '{name}': serving eager fp32 instead of {variant}: {fallback}",
                    extra={"model_name": name, "variant": variant, "reason": fallback})
    engine = load_eager()
    engine.variant = EAGER
    engine.variant_info = describe_variant(EAGER, manifest) | ({"variant_fallback": fallback} if fallback else {})
    return engine


class VariantUnavailable(Exception):
    pass


def _load_onnx(name: str, task: str, model_dir: Path, variant: str, threads: int) -> Any:
    file = ONNX_VARIANTS.get(variant)
    path = model_dir / FOLDER / file if file else None
    if path is None or not path.is_file():
        raise VariantUnavailable(f"variant {variant} is not packaged with this model (run the pipeline's optimized_model stage)")
    import onnxruntime  # noqa: F401  (first: a missing runtime is its own, clear reason)

    from kiln.engines.onnx import OnnxEngine

    return OnnxEngine.load_variant(model_dir, path, name, task, variant, threads)
