"""A small torch MLP trained on scikit-learn's bundled 8x8 digits (64 features -> 10 classes)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

RECIPE_VERSION = "1"  # bump when the training code changes what it produces
N_FEATURES = 64
N_CLASSES = 10
PIXEL_MAX = 16.0  # digits pixels are 0..16; inputs are scaled to 0..1


@dataclass(frozen=True)
class DigitsHyperparameters:
    hidden_units: int = 128
    epochs: int = 40
    learning_rate: float = 3e-3
    batch_size: int = 64
    test_fraction: float = 0.2
    seed: int = 0


def digits_split(test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The fixed stratified train/test split of sklearn's digits (raw 0..16 pixel values)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        data.data.astype(np.float32), data.target, test_size=test_fraction, random_state=seed, stratify=data.target
    )
    return x_train, x_test, y_train, y_test


def build_mlp(hidden_units: int):
    import torch.nn as nn

    return nn.Sequential(
        nn.Linear(N_FEATURES, hidden_units), nn.ReLU(), nn.Linear(hidden_units, N_CLASSES)
    )


class DigitsMLPRecipe:
    name = "digits-mlp"
    task = "classification"
    Hyperparameters = DigitsHyperparameters

    @staticmethod
    def fingerprint_inputs(params: DigitsHyperparameters) -> dict:
        return {"recipe": DigitsMLPRecipe.name, "version": RECIPE_VERSION, "params": asdict(params)}

    @staticmethod
    def train(
        params: DigitsHyperparameters,
        out_dir: Path,
        on_epoch: Callable[[int, dict[str, float]], None] | None = None,
        on_step: Callable[[int, dict[str, float]], None] | None = None,
        checkpoint_dir: Path | None = None,
        save_steps: int = 0,
        max_steps: int = 0,
        validate: bool = False,
    ) -> dict[str, float]:
        """Train, write ``model.safetensors`` + ``config.json`` into ``out_dir``, return training metrics.

        ``on_step`` sees every batch's loss; ``validate`` adds accuracy and macro F1 on the held-out split
        to each epoch's metrics. With ``checkpoint_dir``, the model and optimizer are saved every
        ``save_steps`` steps and a rerun resumes after the last saved step (the batch order is replayed)."""
        import torch
        from safetensors.torch import save_file

        torch.manual_seed(params.seed)
        x_train, x_test, y_train, y_test = digits_split(params.test_fraction, params.seed)
        features = torch.from_numpy(x_train / PIXEL_MAX)
        labels = torch.from_numpy(y_train).long()
        model = build_mlp(params.hidden_units)
        optimizer = torch.optim.Adam(model.parameters(), lr=params.learning_rate)
        loss_fn = torch.nn.CrossEntropyLoss()
        generator = torch.Generator().manual_seed(params.seed)
        resumed = _resume(model, optimizer, checkpoint_dir)
        steps_per_epoch = -(-len(features) // params.batch_size)
        total = params.epochs * steps_per_epoch if not max_steps else min(max_steps, params.epochs * steps_per_epoch)
        started = time.perf_counter()
        metrics: dict[str, float] = {}
        step = 0
        for epoch in range(params.epochs):
            model.train()
            order = torch.randperm(len(features), generator=generator)  # drawn even when skipped: resume replays it
            total_loss, correct, seen = 0.0, 0, 0
            for start in range(0, len(order), params.batch_size):
                if step >= total:
                    break
                step += 1
                if step <= resumed:
                    continue
                batch = order[start : start + params.batch_size]
                logits = model(features[batch])
                loss = loss_fn(logits, labels[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total_loss += loss.item() * len(batch)
                correct += (logits.argmax(1) == labels[batch]).sum().item()
                seen += len(batch)
                if on_step:
                    on_step(step, {"loss": loss.item(), "learning_rate": params.learning_rate, "epoch": float(epoch + 1)})
                if checkpoint_dir is not None and save_steps and step % save_steps == 0:
                    _save_checkpoint(model, optimizer, step, checkpoint_dir)
            if seen:
                metrics = {"train_loss": total_loss / seen, "train_accuracy": correct / seen}
                if validate:
                    metrics.update(_validation(model, x_test, y_test))
                if on_epoch:
                    on_epoch(epoch, metrics)
        metrics["train_seconds"] = time.perf_counter() - started
        metrics["steps"] = float(total)
        metrics["resumed_from_step"] = float(resumed)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out_dir / "model.safetensors"))
        config = {
            "architecture": "mlp",
            "in_features": N_FEATURES,
            "hidden_units": params.hidden_units,
            "num_classes": N_CLASSES,
            "input_scale": 1.0 / PIXEL_MAX,
            "labels": [str(i) for i in range(N_CLASSES)],
        }
        (out_dir / "config.json").write_text(json.dumps(config, indent=2))
        return metrics


def _validation(model, x_test: np.ndarray, y_test: np.ndarray) -> dict[str, float]:
    import torch
    from sklearn.metrics import accuracy_score, f1_score

    model.eval()
    with torch.inference_mode():
        predicted = model(torch.from_numpy(x_test / PIXEL_MAX)).argmax(1).numpy()
    model.train()
    return {"accuracy": float(accuracy_score(y_test, predicted)), "f1_score": float(f1_score(y_test, predicted, average="macro"))}


def _save_checkpoint(model, optimizer, step: int, checkpoint_dir: Path) -> None:
    import torch

    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    temporary = checkpoint_dir / "checkpoint.pt.tmp"
    torch.save({"step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict()}, temporary)
    temporary.replace(checkpoint_dir / "checkpoint.pt")  # atomic: a stop never leaves half a checkpoint


def _resume(model, optimizer, checkpoint_dir: Path | None) -> int:
    import torch

    path = checkpoint_dir / "checkpoint.pt" if checkpoint_dir else None
    if path is None or not path.is_file():
        return 0
    state = torch.load(path, weights_only=False)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    return int(state["step"])
