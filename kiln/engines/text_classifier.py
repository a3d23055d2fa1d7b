"""Text classifiers saved by transformers (e.g. the LoRA fine-tune of MiniLM): text in, label and scores out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kiln.engines.base import Engine, Text
from kiln.errors import KilnError


class TextClassifierEngine(Engine):
    task = "text-classification"

    def __init__(self, name: str, tokenizer: Any, model: Any, max_length: int = 256):
        super().__init__(name, Text())
        self.tokenizer = tokenizer
        self.model = model.eval()
        self.max_length = max_length
        id2label = model.config.id2label or {}
        self.labels = [str(id2label.get(i, id2label.get(str(i), i))) for i in range(model.config.num_labels)]

    @classmethod
    def read_schema(cls, path: Path) -> Text:
        return Text()

    @classmethod
    def load(cls, path: Path, name: str) -> TextClassifierEngine:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        config = json.loads((Path(path) / "config.json").read_text())
        if not config.get("id2label"):
            raise KilnError(f"Model '{name}' at {path} has no id2label in config.json: not a text classifier")
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModelForSequenceClassification.from_pretrained(path, local_files_only=True)
        return cls(name, tokenizer, model)

    def probabilities(self, texts: list[str]):
        import torch

        with torch.inference_mode():
            batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
            batch = {key: batch[key].to(self.device) for key in ("input_ids", "attention_mask")}
            logits = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            return torch.softmax(logits, dim=-1).cpu()

    def predict(self, items: list[str]) -> list[dict[str, Any]]:
        return text_class_results(self.probabilities(items).tolist(), self.labels)


def text_class_results(rows: list[list[float]], labels: list[str]) -> list[dict[str, Any]]:
    results = []
    for row in rows:
        best = max(range(len(row)), key=row.__getitem__)
        results.append(
            {
                "label": labels[best],
                "prediction": labels[best],
                "class_index": best,
                "confidence": row[best],
                "scores": dict(zip(labels, row)),
            }
        )
    return results


def read_labels(config: dict[str, Any]) -> list[str]:
    id2label = config.get("id2label") or {}
    return [str(id2label.get(i, id2label.get(str(i), i))) for i in range(len(id2label))]
