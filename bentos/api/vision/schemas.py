"""Response models of seed 001's recognition routes. Every ``bbox`` is ``[x, y, width, height]`` in pixels
of the uploaded image (after its EXIF orientation is applied); every point is ``[x, y]`` in the same pixels."""

from __future__ import annotations

from pydantic import BaseModel, Field

BBOX = "[x, y, width, height] in pixels of the uploaded image"


class Classification(BaseModel):
    label: str
    confidence: float = Field(description="Softmax probability")


class ClassifyResponse(BaseModel):
    classifications: list[Classification] = Field(description="The top_k labels, best first")
    model: str
    classifier: str = Field(description="efficientnet-lite0 or transformers")
    width: int
    height: int


class Detection(BaseModel):
    label: str
    confidence: float = Field(description="The detector's score mapped into (0, 1); not a calibrated probability for OpenCV")
    bbox: list[int] = Field(description=BBOX, min_length=4, max_length=4)


class DetectResponse(BaseModel):
    detections: list[Detection]
    model: str
    detector: str = Field(description="Which detector ran: opencv (HOG people + Haar cascades) or transformers")
    labels: list[str] = Field(description="The labels looked for in this image")
    known_labels: list[str] = Field(description="Every label this detector can find; no other label is ever answered")
    width: int
    height: int


class Landmarks(BaseModel):
    left_eye: list[int] = Field(description="Centre of the eye on the image's left, [x, y]")
    right_eye: list[int] = Field(description="Centre of the eye on the image's right, [x, y]")
    nose: list[int] = Field(description="Base of the nose, [x, y]")


class DetectedFace(BaseModel):
    face_id: str = Field(description="face_001, face_002...: this answer's faces, largest first")
    confidence: float = Field(description="dlib's detection score mapped into (0, 1)")
    bbox: list[int] = Field(description=BBOX, min_length=4, max_length=4)
    landmarks: Landmarks


class FacesResponse(BaseModel):
    faces: list[DetectedFace]
    model: str
    width: int
    height: int


class RegisterResponse(BaseModel):
    success: bool = True
    face_id: str
    name: str
    bbox: list[int] = Field(description=BBOX)


class RecognizedFace(BaseModel):
    face_id: str | None = Field(description="The registered face it matches; null when unknown")
    name: str = Field(description="The registered name, or 'unknown' when no registered face is within the threshold")
    confidence: float = Field(description="1 - distance / threshold (0 when unknown)")
    distance: float | None = Field(description="Euclidean distance of the 128-d descriptors to the nearest registered face")
    bbox: list[int] = Field(description=BBOX)


class RecognizeResponse(BaseModel):
    faces: list[RecognizedFace]
    threshold: float = Field(description="Largest distance taken for the same person (KILN_FACE_MATCH_THRESHOLD)")
    registered: int = Field(description="Registered faces searched")
    model: str


class RegisteredFace(BaseModel):
    face_id: str
    name: str
    bbox: list[int] = Field(description=BBOX + " (of the registered image)")
    image_file_id: str | None = Field(description="The registered image in the files store")
    model: str
    created_at: str


class FaceList(BaseModel):
    faces: list[RegisteredFace]
    total: int


class Forgotten(BaseModel):
    success: bool = True
    face_id: str
    deleted: list[str] = Field(description="What was deleted: descriptor, image")
