"""Vision engines for the model worker's pools: image classification, object detection, faces.

One input is ``{"image": <base64 JPEG/PNG/...>, ...options}``; the image is decoded in the engine (size and
pixel limits, EXIF orientation: kiln.vision.images), so it crosses the service boundary as compact bytes.
An image that cannot be decoded fails alone: its result is an error payload, its batch-mates still answer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kiln.engines.base import Engine, InputSchema
from kiln.errors import InvalidInput, KilnError
from kiln.serving.protocol import error_reply


class ImageRequest(InputSchema):
    """One image (base64) and the options of a task; ``options`` maps each allowed option to its check."""

    kind = 'an object {"image": <base64 image>, ...}'

    def __init__(self, options: dict[str, Any]):
        self.options = options

    def is_single(self, inputs: Any) -> bool:
        return isinstance(inputs, dict)

    def validate_item(self, item: Any, field: str) -> dict[str, Any]:
        if not isinstance(item, dict):
            raise InvalidInput(field, f"expected {self.kind}, got {type(item).__name__}")
        image = item.get("image")
        if not isinstance(image, str) or not image:
            raise InvalidInput(f"{field}.image", "a base64-encoded image is required")
        unknown = sorted(set(item) - {"image", *self.options})
        if unknown:
            raise InvalidInput(field, f"unknown options {unknown}; this model takes {sorted(self.options)}")
        out = {"image": image}
        for name, check in self.options.items():
            if item.get(name) is not None:
                out[name] = check(item[name], f"{field}.{name}")
        return out


def whole(low: int, high: int):
    def check(value: Any, field: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise InvalidInput(field, f"must be a whole number from {low} to {high}, got {value!r}")
        return value
    return check


def fraction(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise InvalidInput(field, f"must be a number from 0 to 1, got {value!r}")
    return float(value)


def flag(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(field, f"must be true or false, got {value!r}")
    return value


def label_list(value: Any, field: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and 0 < len(v) <= 100 for v in value) or len(value) > 100:
        raise InvalidInput(field, "must be a list of at most 100 label names")
    return value


class VisionEngine(Engine):
    options: dict[str, Any] = {}

    def __init__(self, name: str, model: Any):
        super().__init__(name, ImageRequest(self.options))
        self.model = model
        from kiln.settings import get_settings
        from kiln.vision.images import ImageLimits

        self.limits = ImageLimits.from_settings(get_settings())

    @classmethod
    def read_schema(cls, path: Path) -> InputSchema:
        return ImageRequest(cls.options)

    def torch_module(self) -> Any | None:
        return getattr(self.model, "module", None)

    def decode(self, item: dict[str, Any]) -> Any:
        from kiln.vision.images import image_from_base64

        return image_from_base64(item["image"], self.limits)

    def predict(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        for item in items:
            try:
                results.append(self.run_one(item, self.decode(item)))
            except KilnError as exc:
                results.append(error_reply(exc))
        return results

    def run_one(self, item: dict[str, Any], image: Any) -> dict[str, Any]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "kind": self.model.kind}


class ImageClassificationEngine(VisionEngine):
    task = "image-classification"
    options = {"top_k": whole(1, 100)}

    @classmethod
    def load(cls, path: Path, name: str) -> ImageClassificationEngine:
        from kiln.vision.classifiers import load_classifier

        return cls(name, load_classifier(path))

    def predict(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Every decodable image of the batch goes through the network in one forward pass."""
        decoded: list[tuple[int, Any]] = []
        results: list[dict[str, Any] | None] = [None] * len(items)
        for i, item in enumerate(items):
            try:
                decoded.append((i, self.decode(item)))
            except KilnError as exc:
                results[i] = error_reply(exc)
        if decoded:
            largest = max(int(items[i].get("top_k", 5)) for i, _ in decoded)
            ranked = self.model.classify([image for _, image in decoded], top_k=largest)
            for (i, image), classes in zip(decoded, ranked):
                results[i] = {"classifications": classes[: int(items[i].get("top_k", 5))],
                              "classifier": self.model.kind, "width": image.size[0], "height": image.size[1]}
        return results  # type: ignore[return-value]


class ObjectDetectionEngine(VisionEngine):
    task = "object-detection"
    options = {"threshold": fraction, "labels": label_list}

    @classmethod
    def load(cls, path: Path, name: str) -> ObjectDetectionEngine:
        from kiln.vision.detectors import load_detector

        return cls(name, load_detector(path))

    def run_one(self, item: dict[str, Any], image: Any) -> dict[str, Any]:
        labels = self.model.choose(item.get("labels"))
        detections = self.model.detect(image, item.get("threshold", 0.5), labels)
        return {"detections": detections, "detector": self.model.kind, "labels": labels,
                "known_labels": self.model.labels, "width": image.size[0], "height": image.size[1]}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "labels": self.model.labels}


class FaceEngine(VisionEngine):
    task = "face-recognition"
    options = {"describe": flag, "upsample": whole(0, 2)}

    @classmethod
    def load(cls, path: Path, name: str) -> FaceEngine:
        from kiln.vision.faces import load_faces

        return cls(name, load_faces(path))

    def run_one(self, item: dict[str, Any], image: Any) -> dict[str, Any]:
        faces = self.model.find(image, describe=bool(item.get("describe")), upsample=item.get("upsample"))
        return {"faces": [face.to_dict() for face in faces], "detector": "dlib-hog", "width": image.size[0],
                "height": image.size[1]}
