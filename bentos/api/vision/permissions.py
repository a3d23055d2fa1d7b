"""The vision surface's lines of the permission table. Classifying and detecting are write work (they run a
model). Faces are personal data: with auth on, every face route needs a credential and acts on the caller's
own faces (an admin's: everyone's); listing is read, the rest write. The camera streams are write."""

from bentos.api.http.permissions import Rules, read, write

RULES: Rules = {
    "POST /api/image-recognition/classify": write(),
    "POST /api/image-recognition/detect": write(),
    "POST /api/face-recognition/detect": write(),
    "POST /api/face-recognition/register": write(),
    "POST /api/face-recognition/recognize": write(),
    "GET /api/face-recognition/faces": read(),
    "DELETE /api/face-recognition/faces/{face_id}": write(),
    "WEBSOCKET /api/ws/camera": write(),  # checked by bentos/api/http/websocket.py (?token=)
    "WEBSOCKET /ws/camera": write(),
}
