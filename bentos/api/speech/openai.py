"""OpenAI-compatible audio: POST /v1/audio/speech and POST /v1/audio/transcriptions (the shapes the
openai client, LocalAI and speaches use)."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel, Field

from bentos.api.speech.client import audio_bytes, b64, read_upload, stt_choice
from bentos.api.speech.deps import SpeechDep
from kiln.errors import InvalidInput

router = APIRouter(prefix="/v1/audio", tags=["audio (OpenAI-compatible)"])

# OpenAI's voice names have no counterpart here: they mean "the default voice for the language".
OPENAI_VOICES = {"alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse"}
OPENAI_TTS_MODELS = {"tts-1", "tts-1-hd", "gpt-4o-mini-tts"}
OPENAI_STT_MODELS = {"whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe"}
SPEECH_FORMATS = {"mp3": "mp3", "wav": "wav", "flac": "flac", "ogg": "ogg", "pcm": "wav"}


class SpeechRequest(BaseModel):
    model: str = Field("tts-1", max_length=128, description="tts-1/tts-1-hd (auto), or a Kiln engine name")
    input: str = Field(..., min_length=1, max_length=5000)
    voice: str = Field("alloy", max_length=128, description="A Kiln voice, or an OpenAI voice name (default voice)")
    response_format: str = Field("mp3", description="mp3, wav, flac, ogg or pcm (16-bit little-endian mono)")
    speed: float = Field(1.0, ge=0.25, le=3.0)
    language: str = Field("en", max_length=16, description="Kiln extension: routes to an engine speaking it")


@router.post("/speech", response_class=Response)
async def speech(body: SpeechRequest, speech: SpeechDep) -> Response:
    fmt = SPEECH_FORMATS.get(body.response_format.lower())
    if fmt is None:
        raise InvalidInput("response_format", f"unsupported '{body.response_format}'; use {', '.join(SPEECH_FORMATS)}")
    engine = None if body.model.lower() in OPENAI_TTS_MODELS else body.model
    voice = None if body.voice.lower() in OPENAI_VOICES else body.voice
    result = await speech.call("synthesize", text=body.input, lang=body.language, engine=engine, voice=voice,
                              rate=body.speed, format=fmt)
    data = audio_bytes(result)
    media = result["mime_type"]
    if body.response_format.lower() == "pcm":
        import io

        import soundfile as sf

        samples, _ = sf.read(io.BytesIO(data), dtype="int16")
        data, media = samples.tobytes(), "audio/pcm"
    return Response(data, media_type=media, headers={"X-Engine-Used": result["engine"], "X-Voice-Used": result["voice"],
                                                     "X-Sample-Rate": str(result["sample_rate"])})


def _stamp(seconds: float, separator: str) -> str:
    millis = int(round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def to_srt(segments: list[dict]) -> str:
    return "\n".join(f"{i}\n{_stamp(s['start'], ',')} --> {_stamp(s['end'], ',')}\n{s['text']}\n"
                     for i, s in enumerate(segments, 1))


def to_vtt(segments: list[dict]) -> str:
    return "WEBVTT\n\n" + "\n".join(f"{_stamp(s['start'], '.')} --> {_stamp(s['end'], '.')}\n{s['text']}\n"
                                    for s in segments)


@router.post("/transcriptions")
async def transcriptions(
    speech: SpeechDep,
    file: Annotated[UploadFile | None, File()] = None,
    model: Annotated[str, Form(max_length=128)] = "whisper-1",
    language: Annotated[str | None, Form(max_length=16)] = None,
    response_format: Annotated[Literal["json", "text", "verbose_json", "srt", "vtt"], Form()] = "json",
    timestamp_granularities: Annotated[list[str] | None, Form(alias="timestamp_granularities[]")] = None,
):
    data = await read_upload(file)
    engine, chosen = await stt_choice(speech, model, auto={m.lower() for m in OPENAI_STT_MODELS})
    words = "word" in (timestamp_granularities or [])
    result = await speech.call("transcribe", audio_base64=b64(data), language=language or None,
                              engine=engine, model=chosen, word_timestamps=words)
    if response_format == "text":
        return PlainTextResponse(result["text"])
    if response_format == "srt":
        return PlainTextResponse(to_srt(result["segments"]), media_type="application/x-subrip")
    if response_format == "vtt":
        return PlainTextResponse(to_vtt(result["segments"]), media_type="text/vtt")
    if response_format == "json":
        return {"text": result["text"]}
    verbose = {
        "task": "transcribe", "language": result["language"], "duration": result["duration"], "text": result["text"],
        "segments": [{"id": s["id"], "start": s["start"], "end": s["end"], "text": s["text"],
                      "avg_logprob": round(math.log(s["confidence"]), 4) if s["confidence"] else None,
                      "confidence": s["confidence"]} for s in result["segments"]],
    }
    if words:
        verbose["words"] = [w for s in result["segments"] for w in s["words"]]
    return verbose
