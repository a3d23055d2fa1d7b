"""Seed 001's face routes: detect, register (image + name), recognize; and, since faces are personal data,
``GET /api/face-recognition/faces`` and ``DELETE /api/face-recognition/faces/{face_id}`` (descriptor and image).
With auth on, a caller's faces are their own (an admin sees everyone's). Nothing here logs a face."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query
from starlette.concurrency import run_in_threadpool

from bentos.api.http.backends import SettingsDep
from bentos.api.http.identity import CallerDep
from bentos.api.vision.client import VisionModels, read_image
from bentos.api.vision.deps import FacesDep, VisionDep
from bentos.api.vision.recognition import UPLOAD_ERRORS, ImageFile
from bentos.api.vision.schemas import FaceList, FacesResponse, Forgotten, RecognizeResponse, RegisterResponse
from kiln.errors import InvalidInput

router = APIRouter(prefix="/api/face-recognition", tags=["face recognition (seed 001)"])
TASK = "face-recognition"


def numbered(faces: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The faces of one answer as face_001, face_002... (largest first), in the document's shape."""
    return [{"face_id": f"face_{i:03d}", "confidence": face["confidence"], "bbox": face["bbox"],
             "landmarks": face["landmarks"]} for i, face in enumerate(faces, 1)]


async def find_faces(vision: VisionModels, settings: Any, data: bytes, describe: bool) -> dict[str, Any]:
    return await vision.run(settings.vision_faces, TASK, data, describe=describe)


@router.post("/detect", response_model=FacesResponse, responses=UPLOAD_ERRORS, summary="Faces with boxes and landmarks")
async def detect(vision: VisionDep, settings: SettingsDep, image: ImageFile = None) -> dict:
    upload = await read_image(image, settings)
    found = await find_faces(vision, settings, upload.data, describe=False)
    return {"faces": numbered(found["faces"]), "model": found["model"], "width": found["width"], "height": found["height"]}


@router.post("/register", response_model=RegisterResponse, responses={**UPLOAD_ERRORS, 422: {"description": "No face, or several"}},
             summary="Remember the one face of an image under a name (descriptor and image are stored)")
async def register(
    vision: VisionDep, faces: FacesDep, settings: SettingsDep, caller: CallerDep, image: ImageFile = None,
    name: Annotated[str | None, Form(max_length=200, description="The person's name")] = None,
) -> dict:
    if name is None or not name.strip():
        raise InvalidInput("name", "the person's name is required")
    upload = await read_image(image, settings)
    found = await find_faces(vision, settings, upload.data, describe=True)
    if not found["faces"]:
        raise InvalidInput("image", "no face was found in the image: send a photo with one face, seen from the front")
    if len(found["faces"]) > 1:
        raise InvalidInput("image", f"{len(found['faces'])} faces were found; a registration image must show exactly one")
    face = found["faces"][0]
    record = await run_in_threadpool(faces.register, name.strip(), face["descriptor"], face["bbox"], upload.data,
                                     upload.content_type, upload.filename, caller.owner_id, found["model"])
    return {"success": True, "face_id": record.id, "name": record.name, "bbox": record.bbox}


@router.post("/recognize", response_model=RecognizeResponse, responses=UPLOAD_ERRORS,
             summary="Each face with its nearest registered identity, or 'unknown' beyond the threshold")
async def recognize(vision: VisionDep, faces: FacesDep, settings: SettingsDep, caller: CallerDep, image: ImageFile = None) -> dict:
    upload = await read_image(image, settings)
    found = await find_faces(vision, settings, upload.data, describe=True)
    return await run_in_threadpool(identify, faces, found, caller.owner_id, caller.see_all)


def identify(faces: Any, found: dict[str, Any], owner_id: str | None, see_all: bool) -> dict[str, Any]:
    matches = faces.recognize([f["descriptor"] for f in found["faces"]], owner_id, see_all)
    return {"faces": [{**match, "bbox": face["bbox"]} for face, match in zip(found["faces"], matches)],
            "threshold": faces.threshold, "registered": len(faces.index), "model": found["model"]}


@router.get("/faces", response_model=FaceList, summary="The registered faces (the caller's own when auth is on)")
async def list_faces(
    faces: FacesDep, caller: CallerDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100, offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict:
    records, total = await run_in_threadpool(faces.list, caller.owner_id, caller.see_all, limit, offset)
    return {"faces": [faces.describe(r) for r in records], "total": total}


@router.delete("/faces/{face_id}", response_model=Forgotten, responses={404: {"description": "No such face (of yours)"}},
               summary="Forget a registered face: its descriptor and its stored image")
async def forget(face_id: str, faces: FacesDep, caller: CallerDep) -> dict:
    record = await run_in_threadpool(faces.forget, face_id, caller.owner_id, caller.see_all)
    return {"success": True, "face_id": record.id, "deleted": ["descriptor", "image"] if record.image_file_id else ["descriptor"]}
