"""The model catalog (assets/catalog.yaml): what models exist, where they come from, what they do."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field, ValidationError

from kiln.errors import KilnError, NotFound

Source = Literal["huggingface", "path", "package", "train", "finetune"]


class ServeGate(BaseModel):
    """Agreement with eager fp32 an optimized variant needs to be served by default (kiln.serving.variants)."""

    min_mean_cosine: float = Field(0.99, ge=0, le=1, description="embeddings: mean cosine to eager on the evaluation inputs")
    min_min_cosine: float = Field(0.97, ge=-1, le=1, description="embeddings: lowest cosine to eager")
    max_accuracy_drop: float = Field(0.01, ge=0, le=1, description="classifiers: accuracy lost on the test split")


class CatalogEntry(BaseModel):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")
    source: Source
    id: str
    task: str
    framework: str = "torch"
    size_mb: float | None = None
    licence: str = "unstated"
    primary_metric: str = "accuracy"
    min_metric: float = 0.0  # the evaluation gate: below this the model is not registered
    revision: str | None = None
    allow_patterns: list[str] | None = None  # huggingface: only these files (e.g. ["*.json", "*.safetensors"])
    dataset: str | None = None  # finetune: the dataset in assets/datasets/ it trains and is evaluated on
    # text-to-speech: the vocoder fetched into the model's vocoder/ folder (a hub repo id for source huggingface,
    # a folder for source path), e.g. microsoft/speecht5_hifigan for SpeechT5
    vocoder: str | None = None
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    serve_gate: ServeGate = Field(default_factory=ServeGate)  # which optimized variant may be served


class Catalog(BaseModel):
    models: list[CatalogEntry]

    def names(self) -> list[str]:
        return [entry.name for entry in self.models]

    def get(self, name: str) -> CatalogEntry:
        for entry in self.models:
            if entry.name == name:
                return entry
        raise UnknownModel(name, self.names())


class UnknownModel(NotFound):
    def __init__(self, name: str, available: list[str]):
        self.name = name
        self.available = available
        super().__init__(
            f"Unknown model '{name}'. Available models: {', '.join(available) or 'none'}",
            {"model_name": name, "available_models": available},
        )


def load_catalog(path: Path) -> Catalog:
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise KilnError(f"Model catalog not found at {path}") from exc
    try:
        catalog = Catalog.model_validate(raw)
    except ValidationError as exc:
        raise KilnError(f"Invalid model catalog {path}: {exc}") from exc
    names = catalog.names()
    duplicates = {name for name in names if names.count(name) > 1}
    if duplicates:
        raise KilnError(f"Duplicate model names in {path}: {sorted(duplicates)}")
    for entry in catalog.models:
        if entry.vocoder and (entry.task not in ("text-to-speech", "tts") or entry.source not in ("huggingface", "path")):
            raise KilnError(
                f"Catalog model '{entry.name}': vocoder: belongs to a text-to-speech model fetched from the hub or a path"
            )
        if entry.source == "finetune":
            if entry.id not in names or catalog.get(entry.id).source not in ("huggingface", "path", "package"):
                raise KilnError(
                    f"Catalog model '{entry.name}': id must name a downloaded base model (source huggingface, path "
                    f"or package) in the catalog, got '{entry.id}'"
                )
            if not entry.dataset:
                raise KilnError(f"Catalog model '{entry.name}': a fine-tune needs a dataset")
    return catalog
