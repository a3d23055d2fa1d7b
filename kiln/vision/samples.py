"""Real photographs that installed packages ship, with what is in them: scikit-image's astronaut (Eileen
Collins, NASA, public domain), coffee and chelsea (CC0), rocket (public domain), and matplotlib's Grace
Hopper. The face boxes were recorded by hand, ``[x, y, width, height]``."""

from __future__ import annotations

import os
from typing import Any

ASTRONAUT_FACE = [175, 76, 90, 90]  # l, t, r, b = 175, 76, 265, 166
GRACE_HOPPER_FACE = [180, 139, 186, 186]  # l, t, r, b = 180, 139, 366, 325

# image -> ImageNet-1k names that are right for it (the first synonym, as kiln.vision.classifiers names them)
IMAGENET_TRUTH = {
    "chelsea": {"tabby", "tiger cat", "Egyptian cat"},
    "coffee": {"espresso", "cup", "coffee mug"},
    "rocket": {"missile", "projectile", "space shuttle"},
    "grace_hopper": {"military uniform"},
}
FACE_BOXES = {"astronaut": ASTRONAUT_FACE, "grace_hopper": GRACE_HOPPER_FACE}


def sample_image(name: str) -> Any:
    """The sample as a PIL RGB image."""
    from PIL import Image

    if name == "grace_hopper":
        import matplotlib

        return Image.open(os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")).convert("RGB")
    from skimage import data

    return Image.fromarray(getattr(data, name)()).convert("RGB")


def iou(a: list[float], b: list[float]) -> float:
    """Intersection over union of two ``[x, y, width, height]`` boxes."""
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    width = max(0.0, min(ax1, bx1) - max(a[0], b[0]))
    height = max(0.0, min(ay1, by1) - max(a[1], b[1]))
    inter = width * height
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0
