"""The real training behind each model type of POST /api/training/start, as plain functions the Dagster
asset calls: ``digits`` (kiln/recipes/digits.py), ``text_classifier`` (LoRA on a stored encoder,
kiln/finetune.py), ``causal_lm`` (LoRA/QLoRA) and ``image_classifier`` (EfficientNet-Lite0 on an image folder,
kiln/training/image_classifier.py). Each reports every step (loss, learning rate, epoch) and each epoch's validation metrics."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from kiln.errors import KilnError

StepReport = Callable[[int, dict[str, float]], None]
MAX_ROWS = 200_000


@dataclass(frozen=True)
class TrainingJob:
    """One training, resolved: what the Dagster asset's config carries."""

    model_type: str
    base_model: str
    base_path: str
    dataset_file: str
    epochs: int
    batch_size: int
    learning_rate: float
    save_steps: int
    max_steps: int
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    max_length: int = 512
    gradient_accumulation_steps: int = 1
    quantization: str = "none"
    image_size: int = 224
    train_blocks: int = 0


class BadDataset(KilnError):
    status_code = 422
    code = "VALIDATION_ERROR"


def read_labelled_text(path: Path) -> tuple[list[str], list[str]]:
    """(texts, labels) from a CSV with a header naming ``text`` and ``label``, or JSONL of {"text", "label"}."""
    raw = path.read_bytes()[: 64 * 1024 * 1024].decode("utf-8", errors="replace")
    rows: list[dict[str, Any]]
    first = raw.lstrip()[:1]
    if first in ("{", "["):
        rows = [json.loads(line) for line in raw.splitlines() if line.strip()]
    else:
        rows = list(csv.DictReader(io.StringIO(raw)))
    texts, labels = [], []
    for number, row in enumerate(rows[:MAX_ROWS], start=1):
        if not isinstance(row, dict) or not str(row.get("text") or "").strip() or row.get("label") in (None, ""):
            raise BadDataset(f"dataset_path: row {number} has no text and label (columns or keys 'text', 'label')")
        texts.append(str(row["text"]))
        labels.append(str(row["label"]))
    if len(set(labels)) < 2 or len(texts) < 4:
        raise BadDataset(f"dataset_path: a classifier needs at least 4 rows and 2 labels (found {len(texts)} rows, "
                         f"{len(set(labels))} labels)")
    return texts, labels


def validation_split(count: int, share: float = 0.2, seed: int = 0) -> tuple[list[int], list[int]]:
    import numpy as np

    order = np.random.RandomState(seed).permutation(count).tolist()
    held = max(1, int(round(count * share)))
    return order[held:], order[:held]


def epoch_batches(job: TrainingJob, rows: int) -> int:
    """Batches over every epoch of ``rows`` examples (capped by max_steps)."""
    per_epoch = -(-rows // job.batch_size)
    total = per_epoch * job.epochs
    return min(total, job.max_steps) if job.max_steps else total


def train_digits(job: TrainingJob, out_dir: Path, on_step: StepReport, on_epoch: StepReport,
                 checkpoint_dir: Path | None) -> dict[str, float]:
    from kiln.recipes.digits import DigitsHyperparameters, DigitsMLPRecipe

    params = DigitsHyperparameters(epochs=job.epochs, learning_rate=job.learning_rate, batch_size=job.batch_size)
    return DigitsMLPRecipe.train(params, out_dir, on_epoch=on_epoch, on_step=on_step, checkpoint_dir=checkpoint_dir,
                                 save_steps=job.save_steps, max_steps=job.max_steps, validate=True)


def train_text_classifier(job: TrainingJob, out_dir: Path, on_step: StepReport, on_epoch: StepReport,
                          checkpoint_dir: Path | None, log: Callable[[str], None] = print) -> dict[str, float]:
    from sklearn.metrics import f1_score

    from kiln.finetune import LoraHyperparameters, finetune, load_merged, load_tokenizer, predict_labels

    texts, names = read_labelled_text(Path(job.dataset_file))
    labels = sorted(set(names))
    ids = [labels.index(name) for name in names]
    train_rows, held = validation_split(len(texts))
    params = LoraHyperparameters(learning_rate=job.learning_rate, epochs=job.epochs, batch_size=job.batch_size,
                                 max_steps=job.max_steps, checkpoint_every=job.save_steps or 10**9)

    epoch = [0]

    def step(index: int, metrics: dict[str, float]) -> None:
        if "validation_accuracy" in metrics:
            on_epoch(epoch[0], {"accuracy": metrics["validation_accuracy"]})
        else:
            epoch[0] = int(metrics["epoch"])
            on_step(index + 1, {"loss": metrics["train_loss"], "learning_rate": metrics["learning_rate"],
                                "epoch": metrics["epoch"] + 1})

    validation = ([texts[i] for i in held], [ids[i] for i in held])
    result = finetune("sequence-classification", Path(job.base_path), out_dir, params, [texts[i] for i in train_rows],
                      [ids[i] for i in train_rows], labels=labels, validation=validation,
                      checkpoint_dir=checkpoint_dir, on_step=step, log=log)
    predicted = predict_labels(load_merged("sequence-classification", out_dir), load_tokenizer(out_dir), validation[0])
    metrics = dict(result.metrics)
    metrics["accuracy"] = metrics.pop("validation_accuracy", 0.0)
    metrics["f1_score"] = float(f1_score(validation[1], predicted, average="macro"))
    metrics["resumed_from_step"] = float(result.resumed_from_step)
    return metrics


def read_instructions(path: Path) -> list[str]:
    """Training texts from a JSONL of {"instruction", "input", "output"} or {"prompt", "completion"}."""
    from kiln.finetune import instruction_texts

    lines = path.read_bytes()[: 256 * 1024 * 1024].decode("utf-8", errors="replace").splitlines()
    try:
        rows = [json.loads(line) for line in lines if line.strip()]
        return instruction_texts(rows[:MAX_ROWS])
    except (ValueError, KilnError) as exc:
        raise BadDataset(f"dataset_path: not an instruction JSONL ({exc})") from None


def train_causal_lm(job: TrainingJob, out_dir: Path, on_step: StepReport, checkpoint_dir: Path | None,
                    log: Callable[[str], None] = print) -> dict[str, float]:
    """LoRA (or QLoRA) on a stored causal LM; the adapter is kept in ``out_dir/adapter`` beside the merged model."""
    from kiln.finetune import LoraHyperparameters, finetune

    texts = read_instructions(Path(job.dataset_file))
    params = LoraHyperparameters(rank=job.lora_r, alpha=job.lora_alpha, dropout=job.lora_dropout,
                                 target_modules=("q_proj", "v_proj"), modules_to_save=(), learning_rate=job.learning_rate,
                                 epochs=job.epochs, batch_size=job.batch_size, max_length=job.max_length,
                                 max_steps=job.max_steps, checkpoint_every=job.save_steps or 10**9,
                                 gradient_accumulation_steps=job.gradient_accumulation_steps,
                                 quantization="4bit" if job.quantization == "4bit" else "none")

    def step(index: int, metrics: dict[str, float]) -> None:
        on_step(index + 1, {"loss": metrics["train_loss"], "learning_rate": metrics["learning_rate"],
                            "epoch": metrics["epoch"] + 1})

    result = finetune("causal-lm", Path(job.base_path), out_dir, params, texts, checkpoint_dir=checkpoint_dir,
                      on_step=step, log=log)
    metrics = dict(result.metrics)
    metrics["first_train_loss"] = result.history[0]["train_loss"] if result.history else 0.0
    metrics["resumed_from_step"] = float(result.resumed_from_step)
    return metrics


def planned_steps(job: TrainingJob) -> int:
    """How many optimizer steps the job will take (what status shows as total_steps)."""
    if job.model_type == "digits":
        from kiln.recipes.digits import DigitsHyperparameters, digits_split

        rows = len(digits_split(DigitsHyperparameters.test_fraction)[0])
        return epoch_batches(job, rows)
    if job.model_type == "image_classifier":
        from kiln.training.image_folders import read_image_folder, stratified_split

        return epoch_batches(job, len(stratified_split(read_image_folder(Path(job.dataset_file)).targets)[0]))
    if job.model_type == "causal_lm":
        batches = epoch_batches(replace(job, max_steps=0), len(read_instructions(Path(job.dataset_file))))
        optimizer_steps = -(-batches // job.gradient_accumulation_steps)
        return min(optimizer_steps, job.max_steps) if job.max_steps else optimizer_steps
    texts, _ = read_labelled_text(Path(job.dataset_file))
    return epoch_batches(job, len(validation_split(len(texts))[0]))


def train(job: TrainingJob, out_dir: Path, on_step: StepReport, on_epoch: StepReport, checkpoint_dir: Path | None,
          log: Callable[[str], None] = print) -> dict[str, float]:
    if job.model_type == "digits":
        return train_digits(job, out_dir, on_step, on_epoch, checkpoint_dir)
    if job.model_type == "text_classifier":
        return train_text_classifier(job, out_dir, on_step, on_epoch, checkpoint_dir, log)
    if job.model_type == "causal_lm":
        return train_causal_lm(job, out_dir, on_step, checkpoint_dir, log)
    if job.model_type == "image_classifier":
        from kiln.training.image_classifier import train_image_classifier

        return train_image_classifier(job, out_dir, on_step, on_epoch, checkpoint_dir, log)
    raise KilnError(f"Unknown model_type {job.model_type!r}")
