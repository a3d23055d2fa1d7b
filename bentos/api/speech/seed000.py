"""Seed 000's audio routes: /synthesize and /transcribe (and their /tts, /stt aliases), audio health,
the audio model list and upload validation. Errors: {"success": false, "error", "detail"}."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile
from pydantic import BaseModel, Field, model_validator

from bentos.api.http.timeutil import now
from bentos.api.speech.client import b64, read_upload, stt_choice
from bentos.api.speech.deps import SpeechDep
from bentos.clients import SpeechClient
from kiln.errors import InvalidInput

router = APIRouter(tags=["audio"])

# Seed 000's names of hub TTS models -> the transformers family that serves them (a stored voice of
# that family, or a 503 from the core saying how to get one).
HUB_TTS_MODELS = {"speecht5_tts": "speecht5", "bark_tts": "bark", "mms_tts": "mms"}
AUTO = {"", "default", "auto", "tts", "default_tts"}


class SynthesizeRequest(BaseModel):
    model_name: str = Field("default", max_length=128, description="An engine (piper, espeak, transformers), a voice, "
                                                                   "a stored TTS model, or 'default'")
    inputs: str | None = Field(None, description="Text to speak (seed 000); `text` is accepted too")
    text: str | None = None
    language: str = Field("en", max_length=16)
    voice: str | None = Field(None, max_length=128)
    speed: float = Field(1.0, ge=0.1, le=3.0)
    pitch: float = Field(0.0, ge=-12.0, le=12.0, description="Semitones")
    volume: float = Field(1.0, ge=0.0, le=4.0)
    output_format: str = Field("wav", max_length=8)

    @model_validator(mode="after")
    def one_text(self) -> "SynthesizeRequest":
        if self.inputs is None and self.text is None:
            raise ValueError("give the text to speak in `inputs`")
        return self

    @property
    def content(self) -> str:
        return self.inputs if self.inputs is not None else self.text or ""


async def resolve_model(speech: SpeechClient, model_name: str, voice: str | None) -> tuple[str | None, str | None]:
    """model_name -> (engine, voice): 'default' routes by language; an engine name or a voice name picks it."""
    name = model_name.strip()
    if name.lower() in AUTO:
        return None, voice
    if name.lower() in HUB_TTS_MODELS:
        return HUB_TTS_MODELS[name.lower()], voice
    described = await speech.call("describe")
    from kiln.audio.registry import ALIASES

    if ALIASES.get(name.lower(), name.lower()) in described["tts"]:
        return name, voice
    for engine, entry in described["tts"].items():
        if name in entry["voices"]:
            return engine, name
    raise InvalidInput("model_name", f"unknown TTS model '{name}'. Engines: {', '.join(described['tts'])}; "
                                     "voices: see /audio/models")


async def _synthesize(body: SynthesizeRequest, speech: SpeechDep) -> dict:
    started = time.perf_counter()
    engine, voice = await resolve_model(speech, body.model_name, body.voice)
    result = await speech.call("synthesize", text=body.content, lang=body.language, engine=engine, voice=voice,
                              rate=body.speed, pitch=body.pitch, volume=body.volume, format=body.output_format)
    return {
        "success": True, "audio_data": result["audio_base64"], "audio_format": result["format"],
        "duration": result["duration"], "sample_rate": result["sample_rate"],
        "processing_time": round(time.perf_counter() - started, 4),
        "model_info": {"model": body.model_name, "engine": result["engine"], "voice": result["voice"],
                       "language": result["language"], "cached": result["cached"], "size": result["size"]},
    }


@router.post("/synthesize")
@router.post("/tts/synthesize")  # seed 000's alias: the same handler
async def synthesize(body: SynthesizeRequest, speech: SpeechDep) -> dict:
    return await _synthesize(body, speech)


async def _transcribe(speech: SpeechClient, file: UploadFile | None, model_name: str, language: str | None,
                      enable_timestamps: bool) -> dict:
    started = time.perf_counter()
    data = await read_upload(file)
    engine, model = await stt_choice(speech, model_name)
    result = await speech.call("transcribe", audio_base64=b64(data), language=language or None,
                               engine=engine, model=model, word_timestamps=enable_timestamps)
    return {
        "success": True, "text": result["text"], "segments": result["segments"] if enable_timestamps else [],
        "language": result["language"], "language_probability": result["language_probability"],
        "confidence": result["confidence"], "duration": result["duration"],
        "processing_time": round(time.perf_counter() - started, 4),
        # the model that ran; the one asked for is requested_model
        "model_info": {"model": result["model"], "engine": result["engine"], "model_variant": result["model"],
                       "requested_model": model_name},
    }


Upload = Annotated[UploadFile | None, File(description="Audio file (wav, mp3, ogg, flac)")]


@router.post("/transcribe")
@router.post("/stt/transcribe")  # seed 000's alias: the same handler
async def transcribe(
    speech: SpeechDep, file: Upload = None, audio: Upload = None,
    model_name: Annotated[str, Form(max_length=128)] = "default",
    language: Annotated[str | None, Form(max_length=16)] = None,
    enable_timestamps: Annotated[bool, Form()] = True,
) -> dict:
    return await _transcribe(speech, file or audio, model_name, language, enable_timestamps)


@router.get("/audio/health")
async def audio_health(speech: SpeechDep) -> dict:
    described = await speech.call("describe")
    tts = {n: e["available"] for n, e in described["tts"].items()}
    stt = {n: e["available"] for n, e in described["stt"].items()}
    healthy = any(tts.values()) and any(stt.values())
    return {"status": "healthy" if healthy else "degraded", "tts_available": any(tts.values()),
            "stt_available": any(stt.values()), "engines": {"tts": tts, "stt": stt},
            "unavailable": {n: e["reason"] for n, e in {**described["tts"], **described["stt"]}.items() if not e["available"]},
            "supported_formats": described["formats"], "timestamp": now()}


@router.get("/tts/health")
async def tts_health(speech: SpeechDep) -> dict:
    described = await speech.call("describe")
    available = [n for n, e in described["tts"].items() if e["available"]]
    return {"status": "healthy" if available else "unhealthy", "available_engines": available,
            "default_engine": available[0] if available else None,
            "engines": {n: {"available": e["available"], "voices": len(e["voices"])} for n, e in described["tts"].items()},
            "languages": described["languages"], "timestamp": now()}


@router.get("/audio/models")
async def audio_models(speech: SpeechDep) -> dict:
    described = await speech.call("describe")
    return {
        "tts_models": [{"name": n, "type": "tts", "available": e["available"], "voices": e["voices"],
                        "languages": e["languages"], **({"reason": e["reason"]} if not e["available"] else {})}
                       for n, e in described["tts"].items()],
        "stt_models": [{"name": n, "type": "stt", "available": e["available"], "models": e["models"],
                        "languages": e["languages"], **({"reason": e["reason"]} if not e["available"] else {})}
                       for n, e in described["stt"].items()],
        "supported_formats": described["formats"],
    }


@router.post("/audio/validate")
async def audio_validate(speech: SpeechDep, file: Upload = None, audio: Upload = None) -> dict:
    """Whether an upload is readable audio. A non-audio file is a 422 naming the problem."""
    from kiln.audio.io import decode, probe

    data = await read_upload(file or audio)
    from kiln.settings import get_settings

    # 422 for anything libsndfile cannot read, 413 for a header promising more samples than allowed
    decoded = decode(data, max_samples=get_settings().audio_max_decoded_samples)
    facts = probe(data)
    issues = []
    if decoded.duration < 0.1:
        issues.append("shorter than 0.1 s")
    if float(abs(decoded.samples).max()) < 1e-4:
        issues.append("silent")
    return {"valid": True, "file_name": (file or audio).filename, "file_size": len(data), **facts,
            "duration": round(facts["duration"], 3), "issues": issues, "recommended_sample_rate": 16000}
