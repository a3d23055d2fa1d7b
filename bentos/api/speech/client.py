"""What every speech router shares: reading uploads, and the audio service's base64 audio."""

from __future__ import annotations

import base64
from typing import Any

from fastapi import UploadFile

from kiln.errors import InvalidInput
from kiln.settings import get_settings


async def read_upload(upload: UploadFile | None, field: str = "file") -> bytes:
    if upload is None:
        raise InvalidInput(field, "an audio file is required (multipart/form-data)")
    limit = get_settings().audio_max_upload_mb * 1024 * 1024
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise InvalidInput(field, f"larger than {get_settings().audio_max_upload_mb} MB")
    if not data:
        raise InvalidInput(field, "the uploaded file is empty")
    return data


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def audio_bytes(result: dict[str, Any]) -> bytes:
    return base64.b64decode(result["audio_base64"])
