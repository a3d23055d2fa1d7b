"""Faces with dlib (``dlib-bin``) and the models ``face-recognition-models`` ships: the HOG frontal face
detector, the 5-point landmark predictor and the 128-d ResNet face descriptor (dlib's usual same-person
threshold: distance 0.6).

Landmarks (5-point model): ``left_eye`` and ``right_eye`` are the eye centres on the image's left and
right, ``nose`` the base of the nose; points are ``[x, y]`` pixels of the uploaded image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kiln.errors import ModelNotAvailable
from kiln.vision.preprocess import logistic, xywh

SHAPE_FILE = "shape_predictor_5_face_landmarks.dat"
DESCRIPTOR_FILE = "dlib_face_recognition_resnet_model_v1.dat"
# dlib answers every window scoring above 0; the weakest of those are mostly not faces (a glove, a patch
# on the astronaut's suit scored 0.07-0.12 where the real faces of the samples score 1.1-1.5).
MIN_SCORE = 0.3
UPSAMPLE_BELOW = 400  # images at most this large are scanned at double size by default
MAX_DETECT_SIDE = 1600  # larger images are scanned scaled down (HOG cost grows with the area), boxes scaled back


@dataclass
class Face:
    bbox: list[int]
    confidence: float
    score: float  # dlib's raw detection score (SVM margin; > 0 is a detection)
    landmarks: dict[str, list[int]]
    descriptor: list[float] | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        out = {"bbox": self.bbox, "confidence": self.confidence, "score": self.score, "landmarks": self.landmarks}
        if self.descriptor is not None:
            out["descriptor"] = self.descriptor
        return out


def _find(path: Path, name: str) -> Path:
    found = sorted(Path(path).rglob(name))
    if not found:
        raise ModelNotAvailable(Path(path).name, f"{name} is not under {path}: pip install face-recognition-models dlib-bin "
                                                 "and run the pipeline for dlib-faces (kiln pipeline --model dlib-faces)")
    return found[0]


class DlibFaces:
    kind = "dlib"

    def __init__(self, path: Path):
        import dlib

        self.dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.shapes = dlib.shape_predictor(str(_find(path, SHAPE_FILE)))
        self.descriptors = dlib.face_recognition_model_v1(str(_find(path, DESCRIPTOR_FILE)))

    def find(self, image: Any, describe: bool = False, upsample: int | None = None) -> list[Face]:
        """Faces in ``image`` (PIL RGB), largest first; with ``describe``, each with its 128-d descriptor."""
        rgb = np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))
        height, width = rgb.shape[:2]
        scan, factor = rgb, 1.0
        if max(width, height) > MAX_DETECT_SIDE:
            from PIL import Image

            factor = MAX_DETECT_SIDE / max(width, height)
            scan = np.ascontiguousarray(np.asarray(image.resize((round(width * factor), round(height * factor)), Image.BILINEAR)))
        if upsample is None:  # faces in small images need one doubling (80x80 is the HOG window); it costs 4x
            upsample = 1 if max(scan.shape[:2]) <= UPSAMPLE_BELOW else 0
        rects, scores, _ = self.detector.run(scan, upsample, MIN_SCORE)
        faces = []
        for rect, score in zip(rects, scores):
            if factor != 1.0:
                rect = self.dlib.rectangle(round(rect.left() / factor), round(rect.top() / factor),
                                           round(rect.right() / factor), round(rect.bottom() / factor))
            shape = self.shapes(rgb, rect)
            points = [(p.x, p.y) for p in shape.parts()]
            landmarks = {
                "left_eye": _centre(points[2:4]),
                "right_eye": _centre(points[0:2]),
                "nose": [int(points[4][0]), int(points[4][1])],
            }
            descriptor = None
            if describe:
                descriptor = [round(float(v), 6) for v in self.descriptors.compute_face_descriptor(rgb, shape)]
            faces.append(Face(xywh(rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1, width, height),
                              round(logistic(float(score)), 4), round(float(score), 4), landmarks, descriptor))
        return sorted(faces, key=lambda f: -(f.bbox[2] * f.bbox[3]))


def _centre(points: list[tuple[int, int]]) -> list[int]:
    return [round(sum(p[0] for p in points) / len(points)), round(sum(p[1] for p in points) / len(points))]


def load_faces(path: Path) -> DlibFaces:
    return DlibFaces(Path(path))
