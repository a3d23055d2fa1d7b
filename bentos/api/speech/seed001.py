"""Seed 001's audio routes under /api/audio. Synthesized files are written to the outputs folder
(KILN_HOME/outputs) and served at /outputs/... . Errors: {"detail"}."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile
from pydantic import BaseModel, Field

from bentos.api.http.backends import SettingsDep
from bentos.api.speech.client import audio_bytes, b64, read_upload, stt_choice
from bentos.api.speech.deps import SpeechDep

router = APIRouter(prefix="/api/audio", tags=["audio (seed 001)"])


class SynthesizeRequest(BaseModel):
    text: str = Field(..., min_length=1, max_length=5000)
    voice: str | None = Field(None, max_length=128, description="A voice name; 'default-*' picks the language's default")
    language: str = Field("en", max_length=16)
    speed: float = Field(1.0, ge=0.1, le=3.0)
    pitch: float = Field(0.0, ge=-12.0, le=12.0, description="Semitones")
    format: str = Field("mp3", max_length=8)
    engine: str | None = Field(None, max_length=64)


@router.post("/synthesize")
async def synthesize(body: SynthesizeRequest, speech: SpeechDep, settings: SettingsDep) -> dict:
    voice = None if (body.voice or "").lower().startswith("default") else body.voice
    result = await speech.call("synthesize", text=body.text, lang=body.language, engine=body.engine, voice=voice,
                              rate=body.speed, pitch=body.pitch, format=body.format)
    task_id = f"task_tts_{uuid.uuid4().hex[:12]}"
    folder = settings.outputs_dir / "audio"
    folder.mkdir(parents=True, exist_ok=True)
    name = f"speech_{task_id[9:]}.{result['format']}"
    temporary = folder / f".{name}.part"
    temporary.write_bytes(audio_bytes(result))
    temporary.replace(folder / name)  # never serve a half-written file
    return {"task_id": task_id, "status": "completed", "audio_url": f"/outputs/audio/{name}",
            "duration": result["duration"], "format": result["format"], "engine": result["engine"],
            "voice": result["voice"], "size": result["size"]}


@router.post("/transcribe")
async def transcribe(
    speech: SpeechDep,
    audio: Annotated[UploadFile | None, File(description="Audio file")] = None,
    file: Annotated[UploadFile | None, File(description="Alias of `audio`")] = None,
    language: Annotated[str | None, Form(max_length=16)] = None,
    model: Annotated[str | None, Form(max_length=64, description="Engine or Whisper model size")] = None,
) -> dict:
    data = await read_upload(audio or file, "audio")
    engine, variant = await stt_choice(speech, model)
    result = await speech.call("transcribe", audio_base64=b64(data), language=language or None,
                              engine=engine, model=variant)
    return {"task_id": f"task_audio_{uuid.uuid4().hex[:12]}", "status": "completed", "text": result["text"],
            "language": result["language"], "duration": round(result["duration"], 3),
            "segments": [{"id": s["id"], "start": s["start"], "end": s["end"], "text": s["text"],
                          "confidence": s["confidence"]} for s in result["segments"]],
            "engine": result["engine"], "model": result["model"]}
