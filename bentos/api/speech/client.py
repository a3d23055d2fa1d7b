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


AUTO_STT = {"", "default", "auto", "stt"}


async def stt_choice(speech: Any, name: str | None, auto: set[str] = AUTO_STT) -> tuple[str | None, str | None]:
    """A route's model name -> (engine, model) for the audio service: an automatic name picks by language,
    an STT engine name picks that engine, anything else is a model the core must find stored (whisper-base,
    tiny.en...) or answer 503 with how to get it; never quietly another model."""
    if not name or name.strip().lower() in auto:
        return None, None
    from kiln.audio.registry import ALIASES

    described = await speech.call("describe")
    if ALIASES.get(name.lower(), name.lower()) in described["stt"]:
        return name, None
    return None, name
