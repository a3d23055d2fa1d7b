"""Torch MLP classifiers stored as ``model.safetensors`` + ``config.json`` (e.g. the digits example)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kiln.engines.base import Engine, NumberVector
from kiln.errors import KilnError


class TorchClassifierEngine(Engine):
    task = "classification"

    def __init__(self, name: str, module: Any, config: dict[str, Any]):
        super().__init__(name, NumberVector(int(config["in_features"])))
        self.module = module.eval()
        self.labels = list(config["labels"])
        self.scale = float(config.get("input_scale", 1.0))

    @classmethod
    def read_schema(cls, path: Path) -> NumberVector:
        return NumberVector(int(json.loads((path / "config.json").read_text())["in_features"]))

    @classmethod
    def load(cls, path: Path, name: str) -> TorchClassifierEngine:
        from safetensors.torch import load_file

        from kiln.recipes.digits import build_mlp

        config = json.loads((path / "config.json").read_text())
        if config.get("architecture") != "mlp":
            raise KilnError(f"Model '{name}': unsupported classifier architecture {config.get('architecture')!r}")
        module = build_mlp(int(config["hidden_units"]))
        module.load_state_dict(load_file(str(path / "model.safetensors")))
        return cls(name, module, config)

    def predict(self, items: list[list[float]]) -> list[dict[str, Any]]:
        import torch

        with torch.inference_mode():
            features = torch.tensor(items, dtype=torch.float32, device=self.device) * self.scale
            probabilities = torch.softmax(self.module(features), dim=1)
        return class_results(probabilities.tolist(), self.labels)

    def torch_module(self) -> Any:
        return self.module


def class_results(rows: list[list[float]], labels: list[Any]) -> list[dict[str, Any]]:
    results = []
    for row in rows:
        best = max(range(len(row)), key=row.__getitem__)
        results.append({"prediction": labels[best], "class_index": best, "confidence": row[best], "probabilities": row})
    return results
