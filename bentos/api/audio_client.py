"""What every audio router shares: calling the AudioService and reading uploads."""

from __future__ import annotations

import base64
from typing import Any

from fastapi import UploadFile

from kiln.errors import InvalidInput, KilnError
from kiln.settings import get_settings


class AudioServiceError(KilnError):
    """A Kiln error raised inside the AudioService, carried back with its status and details."""

    def __init__(self, status: int, code: str, message: str, details: dict | None):
        self.status_code = status
        self.code = code
        super().__init__(message, details)


class AudioServiceDown(KilnError):
    status_code = 503
    code = "SERVICE_UNAVAILABLE"


async def call_audio(gateway: Any, method: str, **kwargs: Any) -> dict[str, Any]:
    import aiohttp

    target = getattr(gateway.audio.to_async, method)
    try:
        try:
            result = await target(**kwargs)
        except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError):
            result = await target(**kwargs)  # a stale pooled connection: every audio call is idempotent
    except KilnError:
        raise
    except Exception as exc:
        raise AudioServiceDown(f"The audio service is not reachable: {type(exc).__name__}: {exc}",
                               {"error_type": "engine_error"}) from exc
    if isinstance(result, dict) and isinstance(result.get("error"), dict):
        error = result["error"]
        raise AudioServiceError(int(error["status"]), error["code"], error["message"], error.get("details"))
    return result


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
