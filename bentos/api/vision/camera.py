"""``WS /api/ws/camera`` and ``/ws/camera``: frames in, detections and faces out, newest frame first.

The client sends frames as binary messages (JPEG/PNG bytes) or as JSON text
``{"image": <base64>, "frame_id": any, "operations": ["detect", "faces", "recognize"]}``. The server answers
each frame it processes with ``{"type": "result", "frame_id", "detections", "faces", "latency_ms", "skipped"}``;
frames that arrive while another is being processed replace the waiting one (``skipped`` counts them), and at
most KILN_CAMERA_MAX_FPS frames a second are processed. A bad frame gets ``{"type": "error", "frame_id",
"detail"}`` and the stream goes on. Auth as for /ws/events (``?token=`` with a write credential when auth is on).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from bentos.api.http.identity import owner_of, sees_all
from bentos.api.http.websocket import Refused, refuse, websocket_principal
from bentos.api.vision.client import VisionModels
from bentos.api.vision.faces import identify, numbered
from kiln.errors import InvalidInput, KilnError
from kiln.vision.camera import Frame, LatestFrame, parse_operations
from kiln.vision.images import ImageLimits, b64decode, check_image

router = APIRouter(tags=["camera (seed 001)"])
DEFAULT_OPERATIONS = ("detect", "faces")


def read_frame(message: dict[str, Any], count: int, default_ops: tuple[str, ...], max_bytes: int) -> Frame:
    if message.get("bytes") is not None:
        data, frame_id, operations = message["bytes"], count, default_ops
    else:
        try:
            body = json.loads(message.get("text") or "")
        except ValueError:
            raise InvalidInput("frame", "a text frame must be JSON: {\"image\": <base64>, \"operations\": [...]}") from None
        if not isinstance(body, dict) or not isinstance(body.get("image"), str):
            raise InvalidInput("image", "a JSON frame needs \"image\": <base64 JPEG or PNG>")
        if len(body["image"]) > max_bytes * 4 // 3 + 8:
            raise InvalidInput("image", f"a frame is at most {max_bytes} bytes (KILN_CAMERA_MAX_FRAME_BYTES)")
        operations = parse_operations(body["operations"]) if "operations" in body else default_ops
        data = b64decode(body["image"])
        frame_id = body.get("frame_id", count)
        if not isinstance(frame_id, (str, int)) or isinstance(frame_id, bool) or len(str(frame_id)) > 100:
            frame_id = count
    if len(data) > max_bytes:
        raise InvalidInput("image", f"a frame is at most {max_bytes} bytes (KILN_CAMERA_MAX_FRAME_BYTES)")
    return Frame(frame_id, data, operations)


async def process(frame: Frame, vision: VisionModels, faces: Any, owner_id: str | None, see_all: bool) -> dict[str, Any]:
    settings = vision.settings
    await run_in_threadpool(check_image, frame.image, ImageLimits(settings.camera_max_frame_bytes, settings.vision_max_pixels))
    answer: dict[str, Any] = {"type": "result", "frame_id": frame.frame_id, "operations": list(frame.operations)}
    jobs = {}
    if "detect" in frame.operations:
        jobs["detect"] = vision.run(settings.vision_detector, "object-detection", frame.image)
    if "faces" in frame.operations or "recognize" in frame.operations:
        jobs["faces"] = vision.run(settings.vision_faces, "face-recognition", frame.image, describe="recognize" in frame.operations)
    results = dict(zip(jobs, await asyncio.gather(*jobs.values())))
    if "detect" in results:
        answer["detections"] = results["detect"]["detections"]
        answer["detector"] = results["detect"]["detector"]
    if "faces" in results:
        found = results["faces"]
        answer["faces"] = numbered(found["faces"])
        if "recognize" in frame.operations:
            if faces is None:
                raise KilnError("Face recognition is not ready on this server")
            identified = await run_in_threadpool(identify, faces, found, owner_id, see_all)
            answer["faces"] = [{**numbered_face, "name": match["name"], "match_face_id": match["face_id"],
                                "match_confidence": match["confidence"]}
                               for numbered_face, match in zip(answer["faces"], identified["faces"])]
        answer["width"], answer["height"] = found["width"], found["height"]
    elif "detect" in results:
        answer["width"], answer["height"] = results["detect"]["width"], results["detect"]["height"]
    return answer


async def camera_socket(websocket: WebSocket) -> None:
    try:
        principal = await websocket_principal(websocket)
    except Refused as refused:
        await refuse(websocket, refused)
        return
    backends = getattr(websocket.app.state, "backends", None)
    if getattr(backends, "models", None) is None or getattr(backends, "worker", None) is None:
        await websocket.close(code=1013, reason="the server is still starting")
        return
    settings = backends.settings
    try:
        default_ops = parse_operations(websocket.query_params.get("operations") or list(DEFAULT_OPERATIONS))
    except InvalidInput as exc:
        await websocket.close(code=1008, reason=exc.message[:120])
        return
    await websocket.accept()
    vision = VisionModels(backends.models, backends.worker, settings)
    owner_id, see_all = owner_of(principal), sees_all(principal, websocket.app.state.access.settings.enable_auth)
    slot = LatestFrame(settings.camera_max_fps)
    await websocket.send_json({"type": "connected", "data": {
        "operations": list(default_ops), "max_frame_bytes": settings.camera_max_frame_bytes, "max_fps": settings.camera_max_fps,
        "bbox": "[x, y, width, height] in pixels"}})

    async def receive() -> None:
        count = 0
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            count += 1
            try:
                slot.put(read_frame(message, count, default_ops, settings.camera_max_frame_bytes))
            except KilnError as exc:
                await websocket.send_json({"type": "error", "frame_id": count, "detail": exc.message})

    receiver = asyncio.ensure_future(receive())
    receiver.add_done_callback(lambda _: slot.close())
    try:
        while True:
            frame = await slot.take()
            if frame is None:
                break
            try:
                answer = await process(frame, vision, getattr(backends, "faces", None), owner_id, see_all)
            except KilnError as exc:
                answer = {"type": "error", "frame_id": frame.frame_id, "detail": exc.message}
            answer["latency_ms"] = round((time.perf_counter() - frame.received) * 1000, 1)
            answer["skipped"] = slot.skipped
            await websocket.send_json(answer)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        receiver.cancel()
        with contextlib.suppress(BaseException):
            await receiver


router.add_api_websocket_route("/api/ws/camera", camera_socket)
router.add_api_websocket_route("/ws/camera", camera_socket)
