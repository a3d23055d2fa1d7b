"""Seed 002's files: upload (multipart, checked against its bytes, streamed to the store), metadata,
and download (streamed, with Range). A file belongs to its uploader (or to the task owner that wrote it)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from bentos.api.http.identity import CallerDep
from bentos.api.tasks.deps import FilesDep
from bentos.api.tasks.schemas import FileOut
from kiln.errors import InvalidInput

router = APIRouter(prefix="/files", tags=["files"])


@router.post("/upload", response_model=FileOut, status_code=201, summary="Upload a file for tasks (multipart `file`, `description`)",
             responses={413: {"description": "Larger than KILN_MAX_UPLOAD_BYTES"},
                        415: {"description": "Its bytes are not an allowed type, or not the type it was sent as"}})
async def upload(
    request: Request, files: FilesDep, caller: CallerDep,
    file: Annotated[UploadFile | None, File(description="The file")] = None,
    description: Annotated[str | None, Form(max_length=2000)] = None,
) -> dict:
    if file is None:
        raise InvalidInput("file", "a file is required (multipart/form-data field `file`)")
    try:
        record = await run_in_threadpool(files.save, file.file, file.filename, file.content_type, caller.owner_id, description)
    finally:
        await file.close()
    return files.describe(record, str(request.base_url))


@router.get("/{file_id}", response_model=FileOut, summary="A file's metadata and download_url")
async def metadata(file_id: str, request: Request, files: FilesDep, caller: CallerDep) -> dict:
    record = await run_in_threadpool(files.get, file_id, caller.owner_id, caller.see_all)
    return files.describe(record, str(request.base_url))


def content_disposition(filename: str) -> str:
    fallback = filename.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename)}"


@router.get("/{file_id}/download", response_class=FileResponse, summary="The content (Range requests answer 206)",
            responses={200: {"content": {"application/octet-stream": {}}}, 206: {"description": "Partial content"}})
async def download(file_id: str, files: FilesDep, caller: CallerDep) -> FileResponse:
    record = await run_in_threadpool(files.get, file_id, caller.owner_id, caller.see_all)
    path = await run_in_threadpool(files.path, record)
    return FileResponse(path, media_type=record.content_type, headers={
        "Content-Disposition": content_disposition(record.filename), "X-Content-SHA256": record.sha256})
