"""Evaluating the digits diffusion model with another pipeline model as the judge: the ``example`` digits
classifier reads each generated digit (16x16 -> 8x8 by 2x2 area mean, 0..16 like sklearn's digits), and the
conditional accuracy is the share it reads as the digit asked for (DDIM 25 steps, the model's default guidance).
Plus a sample grid for the eye."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from kiln.recipes.digits_ddpm import N_CLASSES, to_digit_features

JUDGE_MODEL = "example"


def evaluate_digits_generation(model_path: Path, judge: Any, per_class: int = 100, steps: int = 25,
                               guidance_scale: float | None = None, batch_size: int = 250, seed: int = 0) -> tuple[dict[str, float], Any]:
    """(metrics, samples (N, 1, 16, 16) in class order). ``judge`` is a classification engine over 64 features."""
    import numpy as np
    import torch

    from kiln.generation.digits import DigitsDiffusion

    model = DigitsDiffusion.load(model_path, "candidate")
    guidance_scale = model.default_guidance if guidance_scale is None else guidance_scale
    classes = [digit for digit in range(N_CLASSES) for _ in range(per_class)]
    seeds = [seed + index for index in range(len(classes))]
    started = time.perf_counter()
    batches = []
    for start in range(0, len(classes), batch_size):
        from kiln.generation.sampling import sample

        batches.append(sample(model.unet, classes[start:start + batch_size], seeds[start:start + batch_size],
                              model.null_class, steps, guidance_scale))
    samples = torch.cat(batches).numpy()
    seconds = time.perf_counter() - started
    read = np.array([r["class_index"] for r in judge.predict(to_digit_features(samples).tolist())])
    wanted = np.array(classes)
    metrics = {"conditional_accuracy": float((read == wanted).mean()), "samples": float(len(classes)),
               "sample_seconds": seconds, "images_per_second": len(classes) / seconds,
               "sampling_steps": float(steps), "guidance_scale": float(guidance_scale)}
    for digit in range(N_CLASSES):
        metrics[f"accuracy_digit_{digit}"] = float((read[wanted == digit] == digit).mean())
    return metrics, samples


def sample_grid(samples: Any, per_class: int, columns: int = 10, title: str = ""):
    """A matplotlib Figure: one row per digit, the first ``columns`` samples of each (bare Figure, no pyplot)."""
    import numpy as np
    from matplotlib.figure import Figure

    rows = len(samples) // per_class
    figure = Figure(figsize=(columns * 0.6, rows * 0.6 + 0.4))
    axes = figure.add_subplot()
    grid = np.ones((rows * 17, columns * 17)) * -1
    for row in range(rows):
        for column in range(min(columns, per_class)):
            grid[row * 17:row * 17 + 16, column * 17:column * 17 + 16] = samples[row * per_class + column][0]
    axes.imshow(grid, cmap="gray", vmin=-1, vmax=1)
    axes.set_yticks([row * 17 + 8 for row in range(rows)], [str(r) for r in range(rows)])
    axes.set_xticks([])
    axes.set_title(title or "samples: one row per digit asked for", fontsize=9)
    figure.tight_layout()
    return figure


def judge_engine(store: Any) -> Any:
    """The ``example`` classifier of this workspace's model store (its champion when one is marked)."""
    from kiln.engines import load_engine

    chosen = judge_model(store)
    return load_engine(chosen.task, chosen.path, JUDGE_MODEL)


def judge_model(store: Any) -> Any:
    """The stored version of the judge that ``judge_engine`` loads."""
    from kiln.errors import KilnError

    versions = store.versions(JUDGE_MODEL)
    if not versions:
        raise KilnError(f"The digits diffusion model is judged by the '{JUDGE_MODEL}' classifier, which is not in the "
                        f"model store ({store.root}): run the pipeline for '{JUDGE_MODEL}' first "
                        f"(`kiln pipeline --model {JUDGE_MODEL}`)")
    champions = [m for m in versions if m.info.get("champion")]
    return (champions or versions)[-1]
