"""Seed 001's recognition APIs under /api: image classification and object detection, faces (detect,
register, recognize, list, forget), and the camera websocket (/api/ws/camera and /ws/camera). Models run in
the model worker's pools (kiln/engines/vision.py); the logic is kiln/vision/."""

from bentos.api.http import formats
from bentos.api.http.surface import Surface
from bentos.api.vision import camera, faces, recognition
from bentos.api.vision.permissions import RULES

SURFACE = Surface(
    name="vision",
    routers=(recognition.router, faces.router, camera.router),
    error_formats={"/api": formats.multimedia},  # seed 001's {"detail"}, as for /api/audio
    rules=RULES,
)
