"""Object detectors read from a stored model folder. No PyPI package ships a general object detector, so:

- ``opencv``: OpenCV's built-in HOG people detector and the Haar cascades that ``opencv-python-headless<5``
  bundles (``cv2/data/*.xml``: faces, eyes, bodies, cat faces, plates). Each label is one real detector;
- ``transformers``: a DETR/YOLOS-style object-detection checkpoint (``config.json`` + ``preprocessor_config.json``),
  preprocessed with PIL/numpy, post-processed here (softmax without the "no object" class, centre boxes to pixels).

A detector answers only labels it has a detector for: asking for another is a 422 naming the known ones.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from kiln.errors import InvalidInput, KilnError, ModelNotAvailable
from kiln.vision.preprocess import logistic, normalize, xywh

HOG_PERSON = "person"
# label -> cascade file (in the stored copy of cv2/data); scale steps and neighbours tuned per object size.
CASCADES = {
    "face": "haarcascade_frontalface_default.xml",
    "profile_face": "haarcascade_profileface.xml",
    "eye": "haarcascade_eye.xml",
    "full_body": "haarcascade_fullbody.xml",
    "upper_body": "haarcascade_upperbody.xml",
    "cat_face": "haarcascade_frontalcatface.xml",
    "license_plate": "haarcascade_russian_plate_number.xml",
    "smile": "haarcascade_smile.xml",
}
DEFAULT_LABELS = ("person", "face")  # the rest only when asked for: eyes and smiles fire everywhere, cat faces cost 0.5 s
SCALE_STEP = {"cat_face": 1.05}
MIN_NEIGHBOURS = {"face": 5, "cat_face": 3, "eye": 8, "smile": 20}


class Detector:
    kind = ""
    labels: list[str]
    default_labels: list[str]

    def choose(self, labels: list[str] | None) -> list[str]:
        if not labels:
            return list(self.default_labels)
        unknown = [label for label in labels if label not in self.labels]
        if unknown:
            raise InvalidInput("labels", f"{unknown} cannot be detected by the {self.kind} detector; it knows {self.labels}")
        return list(dict.fromkeys(labels))

    def detect(self, image: Any, threshold: float = 0.5, labels: list[str] | None = None) -> list[dict[str, Any]]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"detector": self.kind, "labels": self.labels, "default_labels": self.default_labels}


class OpenCVDetector(Detector):
    kind = "opencv"

    def __init__(self, path: Path):
        import cv2

        self.cv2 = cv2
        self.cascades: dict[str, Any] = {}
        for label, name in CASCADES.items():
            found = sorted(Path(path).rglob(name))
            if found:
                cascade = cv2.CascadeClassifier(str(found[0]))
                if cascade.empty():
                    raise KilnError(f"OpenCV could not read the cascade {found[0]}")
                self.cascades[label] = cascade
        if not self.cascades:
            raise ModelNotAvailable(Path(path).name, f"No Haar cascades under {path}: pip install 'opencv-python-headless<5' "
                                                     "(5.x ships none) and run the pipeline for opencv-detectors")
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.labels = [HOG_PERSON, *self.cascades]
        self.default_labels = [label for label in DEFAULT_LABELS if label in self.labels]

    def detect(self, image: Any, threshold: float = 0.5, labels: list[str] | None = None) -> list[dict[str, Any]]:
        cv2 = self.cv2
        rgb = np.ascontiguousarray(np.asarray(image.convert("RGB")))
        height, width = rgb.shape[:2]
        gray = cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
        found: list[dict[str, Any]] = []
        for label in self.choose(labels):
            if label == HOG_PERSON:
                boxes, weights = self.hog.detectMultiScale(rgb, winStride=(8, 8), padding=(8, 8), scale=1.05)
                scores = [float(w) for w in np.asarray(weights).reshape(-1)]
                sharpness = 2.0
            else:
                smallest = max(24, min(width, height) // 20)
                boxes, _, weights = self.cascades[label].detectMultiScale3(
                    gray, scaleFactor=SCALE_STEP.get(label, 1.1), minNeighbors=MIN_NEIGHBOURS.get(label, 4), minSize=(smallest, smallest),
                    outputRejectLevels=True)
                scores = [float(w) for w in np.asarray(weights).reshape(-1)]
                sharpness = 0.5  # cascade stage weights run larger than SVM margins
            boxes = [list(map(int, b)) for b in np.asarray(boxes).reshape(-1, 4)]
            keep = cv2.dnn.NMSBoxes(boxes, scores, 0.0, 0.4) if boxes else []
            for i in np.asarray(keep).reshape(-1):
                x, y, w, h = boxes[int(i)]
                confidence = logistic(scores[int(i)], sharpness)
                if confidence >= threshold:
                    found.append({"label": label, "confidence": round(confidence, 4),
                                  "bbox": xywh(x, y, x + w, y + h, width, height)})
        return sorted(found, key=lambda d: -d["confidence"])


class TransformersDetector(Detector):
    """DETR, Conditional/Deformable DETR, YOLOS...: logits over labels plus "no object", boxes as (cx, cy, w, h) in [0, 1]."""

    kind = "transformers"

    def __init__(self, path: Path):
        from transformers import AutoModelForObjectDetection

        self.module = AutoModelForObjectDetection.from_pretrained(path, local_files_only=True).eval()
        id2label = self.module.config.id2label
        self.labels = [str(v) for _, v in sorted(((int(k), v) for k, v in id2label.items()))]
        self.index = {str(v): int(k) for k, v in id2label.items()}
        self.default_labels = list(self.labels)
        file = Path(path) / "preprocessor_config.json"
        self.processor = json.loads(file.read_text()) if file.is_file() else {}

    def pixel_values(self, image: Any) -> np.ndarray:
        from kiln.vision.preprocess import resize_shorter

        size = self.processor.get("size") or {"shortest_edge": 800, "longest_edge": 1333}
        shortest, longest = int(size.get("shortest_edge", 800)), int(size.get("longest_edge", 1333))
        w, h = image.size
        shortest = min(shortest, int(shortest * longest / max(w, h))) if max(w, h) * shortest / min(w, h) > longest else shortest
        resized = resize_shorter(image, max(1, shortest))
        mean = self.processor.get("image_mean", [0.485, 0.456, 0.406])
        std = self.processor.get("image_std", [0.229, 0.224, 0.225])
        return normalize(resized, mean, std, float(self.processor.get("rescale_factor", 1 / 255)))

    def detect(self, image: Any, threshold: float = 0.5, labels: list[str] | None = None) -> list[dict[str, Any]]:
        import torch

        from kiln.vision.preprocess import softmax

        wanted = {self.index[label] for label in self.choose(labels)}
        with torch.inference_mode():
            outputs = self.module(pixel_values=torch.from_numpy(self.pixel_values(image)[None]))
        logits = outputs.logits[0].float().numpy()
        boxes = outputs.pred_boxes[0].float().numpy()
        probabilities = softmax(logits)[:, :-1]  # the last class is "no object"
        width, height = image.size
        found = []
        for query, row in enumerate(probabilities):
            best = int(row.argmax())
            if best not in wanted or row[best] < threshold:
                continue
            cx, cy, bw, bh = boxes[query]
            found.append({"label": str(self.module.config.id2label[best]), "confidence": round(float(row[best]), 4),
                          "bbox": xywh((cx - bw / 2) * width, (cy - bh / 2) * height, (cx + bw / 2) * width,
                                       (cy + bh / 2) * height, width, height)})
        return sorted(found, key=lambda d: -d["confidence"])


def load_detector(path: Path) -> Detector:
    path = Path(path)
    return TransformersDetector(path) if (path / "config.json").is_file() else OpenCVDetector(path)
