"""Image preprocessing with PIL and numpy only (torchvision would pull a CUDA torch)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def resize_shorter(image: Any, size: int) -> Any:
    from PIL import Image

    width, height = image.size
    scale = size / min(width, height)
    return image.resize((max(1, round(width * scale)), max(1, round(height * scale))), Image.BICUBIC)


def center_crop(image: Any, width: int, height: int) -> Any:
    w, h = image.size
    left, top = max(0, (w - width) // 2), max(0, (h - height) // 2)
    return image.crop((left, top, left + width, top + height))


def normalize(image: Any, mean: Any, std: Any, scale: float = 1.0) -> np.ndarray:
    """(3, H, W) float32: ``(pixels * scale - mean) / std``, channels first."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) * scale
    array = (array - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(array.transpose(2, 0, 1))


def classification_input(image: Any, crop: int, resize: int | None = None, mean: Any = 0.0, std: Any = 1.0,
                         scale: float = 1.0) -> np.ndarray:
    """The usual ImageNet evaluation transform: shorter side to ``resize`` (crop / 0.875), centre crop."""
    resized = resize_shorter(image, resize or math.floor(crop / 0.875))
    return normalize(center_crop(resized, crop, crop), mean, std, scale)


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    shifted = logits - logits.max(axis=axis, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=axis, keepdims=True)


def logistic(score: float, sharpness: float = 2.0) -> float:
    """A detector's margin (SVM score, cascade weight) mapped into (0, 1): higher is surer; not a calibrated probability."""
    return float(1.0 / (1.0 + math.exp(-sharpness * score)))


def xywh(left: float, top: float, right: float, bottom: float, width: int, height: int) -> list[int]:
    """``[x, y, width, height]`` in whole pixels, clipped to the image."""
    x0, y0 = max(0, min(width, round(left))), max(0, min(height, round(top)))
    x1, y1 = max(0, min(width, round(right))), max(0, min(height, round(bottom)))
    return [x0, y0, max(0, x1 - x0), max(0, y1 - y0)]
