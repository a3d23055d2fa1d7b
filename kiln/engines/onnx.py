"""An ONNX export of a served model, run with onnxruntime: the same inputs, outputs and interface as the
torch engine of its task, so pools, batching, splitting, autoscaling and idle unload work unchanged.

The graphs are the ones ``kiln.optimize`` exports: the engine's whole forward pass (for embeddings the
mean pooling and normalization too), inputs ``input_ids`` + ``attention_mask`` (text) or ``features``
(number vectors), one output. Text is tokenized with the fast tokenizer (``tokenizers``, from the model's
``tokenizer.json``) on the whole batch at once; transformers is not imported at all.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kiln.engines.base import Engine, InputSchema, NumberVector, Text
from kiln.errors import KilnError

TEXT_TASKS = ("sentence-embedding", "text-classification")


class FastTokenizer:
    """Batch tokenization to int64 numpy arrays, padded to the longest item, as the torch engines do."""

    def __init__(self, model_dir: Path, max_length: int):
        from tokenizers import Tokenizer

        file = model_dir / "tokenizer.json"
        if not file.is_file():
            raise KilnError(f"No tokenizer.json in {model_dir}: the ONNX engine needs a fast tokenizer")
        self.tokenizer = Tokenizer.from_file(str(file))
        config = json.loads((model_dir / "tokenizer_config.json").read_text()) if (model_dir / "tokenizer_config.json").is_file() else {}
        pad_token = config.get("pad_token") or "[PAD]"
        pad_token = pad_token.get("content", "[PAD]") if isinstance(pad_token, dict) else pad_token
        pad_id = self.tokenizer.token_to_id(pad_token)
        self.tokenizer.enable_truncation(max_length=max_length)
        self.tokenizer.enable_padding(pad_id=pad_id if pad_id is not None else 0, pad_token=pad_token)

    def __call__(self, texts: list[str]) -> dict[str, Any]:
        import numpy as np

        encoded = self.tokenizer.encode_batch(texts)
        return {
            "input_ids": np.asarray([e.ids for e in encoded], dtype=np.int64),
            "attention_mask": np.asarray([e.attention_mask for e in encoded], dtype=np.int64),
        }


def safetensors_parameters(model_dir: Path) -> int | None:
    """Parameter count of the stored model, from its safetensors headers (shapes only; nothing is loaded)."""
    import math
    import struct

    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for file in files:
        with file.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(length))
        total += sum(math.prod(t["shape"]) for key, t in header.items() if key != "__metadata__")
    return total


def session(path: Path, threads: int) -> Any:
    """An onnxruntime CPU session with ``threads`` intra-op threads (0: onnxruntime's default)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(0, threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # With 1 thread per instance there is no pool to spin; with more, spinning burns a shared CPU.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxEngine(Engine):
    def __init__(self, name: str, task: str, schema: InputSchema, onnx_session: Any, variant: str, graph: Path,
                 tokenizer: FastTokenizer | None = None, labels: list[Any] | None = None, source_parameters: int | None = None):
        super().__init__(name, schema)
        self.source_parameters = source_parameters  # the exported model's weights (the same ones, quantized or not)
        self.task = task
        self.session = onnx_session
        self.variant = variant
        self.graph = graph
        self.tokenizer = tokenizer
        self.labels = labels or []
        self.input_names = [i.name for i in onnx_session.get_inputs()]

    @classmethod
    def read_schema(cls, path: Path) -> InputSchema:
        raise KilnError("The ONNX engine serves a variant of a torch engine: read the schema from that engine")

    @classmethod
    def load(cls, path: Path, name: str) -> Engine:
        raise KilnError("Load an ONNX variant with OnnxEngine.load_variant (kiln.serving.variants.load_variant)")

    @classmethod
    def load_variant(cls, model_dir: Path, graph: Path, name: str, task: str, variant: str, threads: int = 0) -> OnnxEngine:
        """The ONNX graph ``graph`` of the model stored at ``model_dir`` (its tokenizer and config)."""
        engine = cls._build(model_dir, graph, name, task, variant, threads)
        engine.source_parameters = safetensors_parameters(model_dir)
        return engine

    @classmethod
    def _build(cls, model_dir: Path, graph: Path, name: str, task: str, variant: str, threads: int) -> OnnxEngine:
        config = json.loads((model_dir / "config.json").read_text())
        if task == "sentence-embedding":
            from kiln.engines.embedding import read_embedding_config

            max_length, _ = read_embedding_config(model_dir)  # normalization is inside the graph
            return cls(name, task, Text(), session(graph, threads), variant, graph, FastTokenizer(model_dir, max_length))
        if task == "text-classification":
            from kiln.engines.text_classifier import read_labels

            labels = read_labels(config)
            if not labels:
                raise KilnError(f"Model '{name}' at {model_dir} has no id2label in config.json: not a text classifier")
            return cls(name, task, Text(), session(graph, threads), variant, graph, FastTokenizer(model_dir, 256), labels)
        if task == "classification":
            return cls(name, task, NumberVector(int(config["in_features"])), session(graph, threads), variant, graph,
                       labels=list(config["labels"]))
        raise KilnError(f"No ONNX engine for task '{task}' (model '{name}'); ONNX serves {[*TEXT_TASKS, 'classification']}")

    def run(self, items: list[Any]) -> Any:
        """The graph's output for a batch: embeddings or class probabilities, (len(items), width) float32."""
        import numpy as np

        if self.tokenizer is not None:
            feeds = self.tokenizer(items)
        else:
            feeds = {"features": np.asarray(items, dtype=np.float32)}
        return self.session.run(None, {k: v for k, v in feeds.items() if k in self.input_names})[0]

    def predict(self, items: list[Any]) -> list[dict[str, Any]]:
        rows = self.run(items).tolist()
        if self.task == "sentence-embedding":
            from kiln.engines.embedding import embedding_results

            return embedding_results(rows)
        if self.task == "text-classification":
            from kiln.engines.text_classifier import text_class_results

            return text_class_results(rows, self.labels)
        from kiln.engines.classifier import class_results

        return class_results(rows, self.labels)

    def torch_module(self) -> None:
        return None

    @property
    def memory_bytes(self) -> int:
        """The graph and its external weights (what onnxruntime holds, give or take its arena)."""
        data = self.graph.with_name(self.graph.name + ".data")
        return self.graph.stat().st_size + (data.stat().st_size if data.is_file() else 0)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "parameters": self.source_parameters, "runtime": "onnxruntime"}
