"""Sentence embeddings from a transformers encoder: mean pooling + L2 normalisation (sentence-transformers layout)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kiln.engines.base import Engine, Text


class SentenceEmbeddingEngine(Engine):
    task = "sentence-embedding"

    def __init__(self, name: str, tokenizer: Any, model: Any, max_seq_length: int, normalize: bool):
        super().__init__(name, Text())
        self.tokenizer = tokenizer
        self.model = model.eval()
        self.max_seq_length = max_seq_length
        self.normalize = normalize

    @classmethod
    def read_schema(cls, path: Path) -> Text:
        return Text()

    @classmethod
    def load(cls, path: Path, name: str) -> SentenceEmbeddingEngine:
        from transformers import AutoModel, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModel.from_pretrained(path, local_files_only=True)
        max_seq_length, normalize = read_embedding_config(path)
        return cls(name, tokenizer, model, max_seq_length, normalize)

    def encode(self, texts: list[str]):
        """(len(texts), dim) float32 tensor of sentence embeddings."""
        import torch

        with torch.inference_mode():
            batch = self.tokenizer(
                texts, padding=True, truncation=True, max_length=self.max_seq_length, return_tensors="pt"
            )
            batch = {key: batch[key].to(self.device) for key in ("input_ids", "attention_mask")}
            hidden = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            if self.normalize:
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return pooled.cpu()

    def predict(self, items: list[str]) -> list[dict[str, Any]]:
        return embedding_results(self.encode(items).tolist())


def embedding_results(rows: list[list[float]]) -> list[dict[str, Any]]:
    return [{"embedding": row, "dimensions": len(row)} for row in rows]


def read_embedding_config(path: Path) -> tuple[int, bool]:
    """(max_seq_length, normalize) from a sentence-transformers folder's config files."""
    max_seq_length = 256
    if (path / "sentence_bert_config.json").is_file():
        max_seq_length = json.loads((path / "sentence_bert_config.json").read_text()).get("max_seq_length", 256)
    normalize = True
    if (path / "modules.json").is_file():
        modules = json.loads((path / "modules.json").read_text())
        normalize = any(m.get("type", "").endswith("Normalize") for m in modules)
    return max_seq_length, normalize
