"""Inference engines: each loads one kind of stored model and validates and runs its inputs.

The registry is keyed by catalog ``task``, so any stored model of a known task can be served
without code changes.
"""

from __future__ import annotations

from pathlib import Path

from kiln.engines.base import Engine
from kiln.errors import KilnError


def engine_classes() -> dict[str, type[Engine]]:
    from kiln.engines.classifier import TorchClassifierEngine
    from kiln.engines.embedding import SentenceEmbeddingEngine
    from kiln.engines.text_classifier import TextClassifierEngine
    from kiln.engines.vision import FaceEngine, ImageClassificationEngine, ObjectDetectionEngine

    return {cls.task: cls for cls in (TorchClassifierEngine, SentenceEmbeddingEngine, TextClassifierEngine,
                                      ImageClassificationEngine, ObjectDetectionEngine, FaceEngine)}


def load_engine(task: str, path: Path, name: str, device: str = "cpu") -> Engine:
    """The engine of a stored model, its weights on ``device`` (serving passes KILN_DEVICE's; the pipeline's
    evaluation and export run on the CPU, where the ONNX variants they compare against run)."""
    classes = engine_classes()
    if task not in classes:
        raise KilnError(f"No engine serves task '{task}' (model '{name}'). Known tasks: {sorted(classes)}")
    return classes[task].load(Path(path), name=name).place(device)


__all__ = ["Engine", "engine_classes", "load_engine"]
