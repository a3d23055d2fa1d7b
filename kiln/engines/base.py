"""The engine interface shared by every served model family, and the input schemas they validate with.

A schema is read from a stored model's config files alone (no weights), so a gateway can validate
requests with exactly the rules the engine uses, without loading the model.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from numbers import Real
from pathlib import Path
from typing import Any

from kiln.errors import InvalidInput


class InputSchema(ABC):
    kind: str = ""  # what one input is, for messages and /models

    @abstractmethod
    def is_single(self, inputs: Any) -> bool:
        """Whether ``inputs`` is one item rather than a batch of items."""

    @abstractmethod
    def validate_item(self, item: Any, field: str) -> Any:
        """Return one normalized input or raise InvalidInput naming ``field``."""

    def validate(self, inputs: Any, max_items: int) -> tuple[list[Any], bool]:
        """Normalize request ``inputs`` into (items, is_batch)."""
        if inputs is None or (isinstance(inputs, (list, str)) and len(inputs) == 0):
            raise InvalidInput("inputs", "must not be empty")
        if self.is_single(inputs):
            return [self.validate_item(inputs, "inputs")], False
        if not isinstance(inputs, list):
            raise InvalidInput("inputs", f"expected {self.kind} or a list of them, got {type(inputs).__name__}")
        if len(inputs) > max_items:
            raise InvalidInput("inputs", f"a batch holds at most {max_items} items, got {len(inputs)}")
        return [self.validate_item(item, f"inputs[{i}]") for i, item in enumerate(inputs)], True


class NumberVector(InputSchema):
    def __init__(self, length: int):
        self.length = length
        self.kind = f"a list of {length} numbers"

    def is_single(self, inputs: Any) -> bool:
        return isinstance(inputs, list) and bool(inputs) and not isinstance(inputs[0], list)

    def validate_item(self, item: Any, field: str) -> list[float]:
        if not isinstance(item, list):
            raise InvalidInput(field, f"expected {self.kind}, got {type(item).__name__}")
        if len(item) != self.length:
            raise InvalidInput(field, f"expected {self.length} numbers, got {len(item)}")
        for i, value in enumerate(item):
            if isinstance(value, bool) or not isinstance(value, Real):
                raise InvalidInput(f"{field}[{i}]", f"must be a number, got {value!r}")
            if not math.isfinite(value):
                raise InvalidInput(f"{field}[{i}]", f"must be finite, got {value!r}")
        return [float(v) for v in item]


class Text(InputSchema):
    kind = "a string"

    def __init__(self, max_chars: int = 10_000):
        self.max_chars = max_chars

    def is_single(self, inputs: Any) -> bool:
        return isinstance(inputs, str)

    def validate_item(self, item: Any, field: str) -> str:
        if not isinstance(item, str):
            raise InvalidInput(field, f"expected a string, got {type(item).__name__}")
        if not item.strip():
            raise InvalidInput(field, "must not be blank")
        if len(item) > self.max_chars:
            raise InvalidInput(field, f"at most {self.max_chars} characters, got {len(item)}")
        return item


class Engine(ABC):
    task: str = ""
    variant: str = "eager-fp32"  # what runs: eager torch, or an ONNX export (kiln.engines.onnx)
    variant_info: dict[str, Any] | None = None  # measured speed-up and agreement (kiln.serving.variants)

    def __init__(self, name: str, schema: InputSchema, device: str = "cpu"):
        self.name = name
        self.schema = schema
        self.device = device

    @classmethod
    @abstractmethod
    def read_schema(cls, path: Path) -> InputSchema:
        """The input rules of the model stored at ``path``, from its config files only."""

    @classmethod
    @abstractmethod
    def load(cls, path: Path, name: str) -> Engine: ...

    @abstractmethod
    def predict(self, items: list[Any]) -> list[dict[str, Any]]:
        """Run a batch of validated items; one result per item."""

    def torch_module(self) -> Any | None:
        """The torch module that holds the weights, for the counts below (None: not a torch model)."""
        return getattr(self, "model", None)

    def place(self, device: str) -> Engine:
        """Move the weights to ``device`` (a torch device: "cpu", "cuda:0"); ``predict`` then sends its inputs
        there. An engine without torch weights (ONNX Runtime, OpenCV, dlib) runs where its runtime does: the CPU."""
        module = self.torch_module()
        if module is not None and device != self.device:
            module.to(device)
            self.device = device
        return self

    @property
    def parameters(self) -> int:
        module = self.torch_module()
        return 0 if module is None else torch_module_stats(module)[0]

    @property
    def memory_bytes(self) -> int:
        module = self.torch_module()
        return 0 if module is None else torch_module_stats(module)[1]

    def describe(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "input": self.schema.kind,
            "device": self.device,
            "parameters": self.parameters,
            "memory_bytes": self.memory_bytes,
            "variant": self.variant,
            **(self.variant_info or {}),
        }


def torch_module_stats(module: Any) -> tuple[int, int]:
    """(parameter count, bytes held by parameters and buffers)."""
    params = sum(p.numel() for p in module.parameters())
    size = sum(p.numel() * p.element_size() for p in module.parameters())
    size += sum(b.numel() * b.element_size() for b in module.buffers())
    return params, size
