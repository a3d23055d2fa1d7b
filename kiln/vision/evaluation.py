"""Held-out checks of the vision models on the sample photographs (kiln.vision.samples): few images, but
real ones with known answers, so a broken checkpoint, wrong preprocessing or a wrong label file shows.

- image classification: top-1 and top-5 accuracy against the accepted ImageNet names;
- object detection: recall of the hand-recorded face boxes (IoU >= 0.5), for detectors that know "face";
- faces: detection recall of the hand-recorded boxes, and same/different-person verification accuracy at
  the match threshold on pairs (the astronaut against herself mirrored and at 3/4 size, against Grace Hopper...).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kiln.vision.samples import FACE_BOXES, IMAGENET_TRUTH, iou, sample_image


def mirrored_smaller(image: Any, scale: float = 0.75) -> Any:
    from PIL import ImageOps

    flipped = ImageOps.mirror(image)
    return flipped.resize((round(image.width * scale), round(image.height * scale)))


def evaluate_image_classifier(classifier: Any) -> dict[str, float]:
    names = list(IMAGENET_TRUTH)
    ranked = classifier.classify([sample_image(n) for n in names], top_k=5)
    top1 = [ranked[i][0]["label"] in IMAGENET_TRUTH[n] for i, n in enumerate(names)]
    top5 = [any(c["label"] in IMAGENET_TRUTH[n] for c in ranked[i]) for i, n in enumerate(names)]
    return {"top1_accuracy": float(np.mean(top1)), "top5_accuracy": float(np.mean(top5)), "samples": float(len(names))}


def evaluate_detector(detector: Any) -> dict[str, float]:
    if "face" not in detector.labels:
        return {"face_recall": 0.0, "samples": 0.0, "knows_face": 0.0}
    hits = []
    for name, box in FACE_BOXES.items():
        found = detector.detect(sample_image(name), threshold=0.3, labels=["face"])
        hits.append(any(iou(d["bbox"], box) >= 0.5 for d in found))
    return {"face_recall": float(np.mean(hits)), "samples": float(len(hits)), "knows_face": 1.0}


def evaluate_faces(faces: Any, threshold: float = 0.6) -> dict[str, float]:
    images = {name: sample_image(name) for name in FACE_BOXES}
    variants = {f"{name}_mirrored": mirrored_smaller(image) for name, image in images.items()}
    found = {name: faces.find(image, describe=True) for name, image in {**images, **variants}.items()}
    recall = [any(iou(f.bbox, box) >= 0.5 for f in found[name]) for name, box in FACE_BOXES.items()]

    def descriptor(name: str) -> np.ndarray | None:
        return np.asarray(found[name][0].descriptor) if found[name] else None

    pairs = [("astronaut", "astronaut_mirrored", True), ("grace_hopper", "grace_hopper_mirrored", True),
             ("astronaut", "grace_hopper", False), ("astronaut_mirrored", "grace_hopper", False),
             ("astronaut", "grace_hopper_mirrored", False)]
    right, distances = [], {}
    for a, b, same in pairs:
        da, db = descriptor(a), descriptor(b)
        distance = float(np.linalg.norm(da - db)) if da is not None and db is not None else float("inf")
        distances[f"distance_{a}_{b}"] = distance
        right.append((distance <= threshold) == same)
    return {"verification_accuracy": float(np.mean(right)), "detection_recall": float(np.mean(recall)),
            **{k: round(v, 4) for k, v in distances.items() if np.isfinite(v)}}
