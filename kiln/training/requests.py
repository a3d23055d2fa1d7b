"""What a training request may ask for, checked before a task exists: the model type, a base model the
store (or a recipe) holds, a dataset the caller owns, and a model-store name for the result."""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Literal

from pydantic import BaseModel, Field

from kiln.errors import InvalidInput, NotFound
from kiln.store import ModelStore

ModelType = Literal["digits", "text_classifier"]
STORE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
DIGITS_RECIPES = ("digits-mlp",)  # kiln/recipes/digits.py; trains from scikit-learn's bundled digits
TEXT_BASE_TASKS = ("sentence-embedding", "text-classification")  # encoders the LoRA path fine-tunes


class TrainingParameters(BaseModel):
    """The ``training`` task's parameters: seed 001's POST /api/training/start body, resolved."""

    model_type: ModelType
    base_model: str = Field(min_length=1, max_length=63)
    dataset_path: str | None = Field(None, max_length=255, description="A file of the files store (id or name): "
                                     "CSV or JSONL of text,label for text_classifier; digits needs none")
    output_dir: str = Field(min_length=1, max_length=255, description="A model-store name (a path's last segment is taken)")
    epochs: int = Field(3, ge=1, le=100)
    batch_size: int = Field(32, ge=1, le=1024)
    learning_rate: float = Field(1e-3, gt=0, le=1)
    save_steps: int = Field(0, ge=0, le=1_000_000, description="Checkpoint every this many steps (0: only at the end)")
    max_steps: int = Field(0, ge=0, le=1_000_000, description="Stop after this many steps (0: every epoch)")


def store_name(output_dir: str) -> str:
    """``output_dir`` as a model-store name: the last segment of a path, never a place on the server."""
    name = PurePosixPath(output_dir.strip()).name
    if not STORE_NAME.match(name or ""):
        raise InvalidInput("output_dir", f"{output_dir!r} gives no model-store name: its last segment must be 1-63 "
                           "letters, digits, '.', '_' or '-', starting with a letter or digit")
    return name


def text_bases(store: ModelStore) -> dict[str, str]:
    """Stored encoders a text classifier can start from: name -> path of the newest version."""
    found: dict[str, str] = {}
    if store.root.is_dir():
        for folder in sorted(store.root.iterdir()):
            model = store.latest(folder.name) if folder.is_dir() and not folder.name.startswith(".") else None
            if model is not None and model.task in TEXT_BASE_TASKS:
                found[model.name] = str(model.path)
    return found


def resolve_base(model_type: ModelType, base_model: str, store: ModelStore) -> str:
    """The base model's stored path ('' for a recipe), or 404 listing what this model type can start from."""
    if model_type == "digits":
        if base_model in DIGITS_RECIPES:
            return ""
        raise NotFound(f"Unknown base_model {base_model!r} for digits: the recipes are {', '.join(DIGITS_RECIPES)}",
                       {"field": "base_model", "available": list(DIGITS_RECIPES)})
    bases = text_bases(store)
    if base_model in bases:
        return bases[base_model]
    held = ", ".join(bases) or "none (run the pipeline for minilm: `kiln pipeline` or the Dagster job model_pipeline)"
    raise NotFound(f"The model store holds no text encoder {base_model!r}; it holds: {held}",
                   {"field": "base_model", "available": sorted(bases)})
