"""Seed 003 (TTSKit) under /api/v1: synthesis, engines, voices, cache and system information.
Errors use TTSKit's {"detail", "error_type", "request_id"} (bentos/api/errors.py)."""

from __future__ import annotations

import platform
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from bentos.api.http.backends import SettingsDep, StartedDep
from bentos.api.speech.client import audio_bytes
from bentos.api.speech.deps import SpeechDep
from kiln import __version__
from kiln.audio.io import FORMATS
from kiln.errors import InvalidInput

router = APIRouter(prefix="/api/v1", tags=["tts (TTSKit)"])
SERVICE = "Kiln TTS API (TTSKit-compatible)"
SECONDS_PER_CHAR = 0.1  # TTSKit's preview estimate ("Hello, world!": 13 chars -> 1.3 s)


class SynthRequest(BaseModel):
    text: str = Field(..., min_length=1, max_length=5000, description="Text to synthesize (at most maxLength characters: the configured limit)")
    lang: str = Field("en", max_length=16)
    engine: str | None = Field(None, max_length=64)
    voice: str | None = Field(None, max_length=128)
    rate: float = Field(1.0, ge=0.1, le=3.0)
    pitch: float = Field(0.0, ge=-12.0, le=12.0)
    format: str = Field("ogg", description="ogg, mp3, wav (flac too)")


class BatchRequest(BaseModel):
    texts: list[str] = Field(..., min_length=1, max_length=10)
    lang: str = Field("en", max_length=16)
    engine: str | None = Field(None, max_length=64)
    voice: str | None = Field(None, max_length=128)
    rate: float = Field(1.0, ge=0.1, le=3.0)
    pitch: float = Field(0.0, ge=-12.0, le=12.0)
    format: str = "ogg"


def _synth_kwargs(body: SynthRequest | BatchRequest) -> dict[str, Any]:
    return {"lang": body.lang, "engine": body.engine, "voice": body.voice, "rate": body.rate, "pitch": body.pitch,
            "format": body.format}


@router.post("/synth", response_class=Response,
             responses={200: {"content": {"audio/ogg": {}, "audio/mpeg": {}, "audio/wav": {}}}})
async def synth(body: SynthRequest, speech: SpeechDep) -> Response:
    result = await speech.call("synthesize", text=body.text, **_synth_kwargs(body))
    audio = audio_bytes(result)
    return Response(audio, media_type=result["mime_type"], headers={
        "Content-Disposition": f"attachment; filename=synthesis.{result['format']}",
        "X-Audio-Duration": str(result["duration"]), "X-Audio-Size": str(len(audio)),
        "X-Engine-Used": result["engine"], "X-Voice-Used": result["voice"],
        "X-Cache": "HIT" if result["cached"] else "MISS",
    })


@router.post("/synth/batch")
async def synth_batch(body: BatchRequest, speech: SpeechDep) -> dict:
    # Request-wide problems (format, engine, voice, language) fail the whole request; text problems fail one item.
    if body.format.lower() not in FORMATS:
        raise InvalidInput("format", f"unsupported audio format '{body.format}'; use one of {', '.join(FORMATS)}")
    await speech.call("route", lang=body.lang, engine=body.engine, voice=body.voice)
    results = []
    for index, text in enumerate(body.texts):
        try:
            item = await speech.call("synthesize", text=text, **_synth_kwargs(body))
        except Exception as exc:  # per-item errors: one bad text does not fail the batch
            message = getattr(exc, "message", None) or str(exc)
            results.append({"index": index, "success": False, "text": text[:100], "error": message,
                            "status_code": getattr(exc, "status_code", 500)})
            continue
        results.append({"index": index, "success": True, "text": text, "audio_base64": item["audio_base64"],
                        "duration": item["duration"], "size": item["size"], "format": item["format"],
                        "engine": item["engine"], "voice": item["voice"], "cached": item["cached"]})
    successful = sum(1 for r in results if r["success"])
    # TTSKit's documented answer: the request succeeded (it ran every text); failures are reported per item.
    return {"success": True, "total_texts": len(results), "successful": successful,
            "failed": len(results) - successful, "results": results}


@router.get("/synth/preview")
async def synth_preview(
    speech: SpeechDep,
    text: Annotated[str, Query(min_length=1, max_length=5000)],
    lang: Annotated[str, Query(max_length=16)] = "en",
    engine: str | None = None,
    voice: str | None = None,
) -> dict:
    routed = await speech.call("route", lang=lang, engine=engine, voice=voice, text=text)
    described = await speech.call("describe")
    return {
        "success": True, "text_preview": text[:100] + ("..." if len(text) > 100 else ""), "text_length": len(text),
        "language": lang, "engine": routed["engine"], "voice": routed["voice"],
        "estimated_duration": round(len(text) * SECONDS_PER_CHAR, 2),
        "available_engines": [n for n, e in described["tts"].items() if e["available"]],
    }


@router.get("/engines")
async def engines(speech: SpeechDep, available_only: bool = False) -> list[dict]:
    described = await speech.call("describe")
    return [e for e in described["tts"].values() if e["available"] or not available_only]


@router.get("/engines/{engine_name}")
async def engine(engine_name: str, speech: SpeechDep) -> dict:
    return await speech.call("engine", name=engine_name)


@router.get("/engines/{engine_name}/voices")
async def engine_voices(engine_name: str, speech: SpeechDep, language: str | None = None) -> list[dict]:
    return (await speech.call("voices", engine=engine_name, language=language))["voices"]


@router.get("/voices")
async def voices(speech: SpeechDep, engine: str | None = None, language: str | None = None) -> list[dict]:
    return (await speech.call("voices", engine=engine, language=language))["voices"]


@router.get("/engines/{engine_name}/test")
async def engine_test(
    engine_name: str, speech: SpeechDep,
    text: Annotated[str, Query(min_length=1, max_length=5000)] = "Hello, world!",
    language: Annotated[str, Query(max_length=16)] = "en",
) -> dict:
    await speech.call("engine", name=engine_name)  # unknown engine -> 404
    started = time.perf_counter()
    result = await speech.call("synthesize", text=text, lang=language, engine=engine_name, format="wav",
                              use_cache=False)
    return {"success": True, "engine": result["engine"], "voice": result["voice"], "test_text": text,
            "language": language, "duration": result["duration"], "size": result["size"], "format": "wav",
            "processing_time": round(time.perf_counter() - started, 4),
            "message": f"Engine '{result['engine']}' is working correctly"}


@router.get("/capabilities")
async def capabilities(speech: SpeechDep) -> dict:
    described = await speech.call("describe")
    return {
        "engines": {name: {"available": e["available"], "capabilities": e["capabilities"], "languages": e["languages"],
                           "voices": len(e["voices"]), **({"reason": e["reason"]} if not e["available"] else {})}
                    for name, e in described["tts"].items()},
        "recognition": {name: {"available": e["available"], "capabilities": e["capabilities"],
                               "languages": len(e["languages"]), "models": e["models"]}
                        for name, e in described["stt"].items()},
        "formats": described["formats"], "languages": described["languages"], "limits": described["limits"],
    }


def _uptime(started: float) -> float:
    return round(time.time() - started, 3)


@router.get("/health")
async def health(speech: SpeechDep, started: StartedDep) -> dict:
    described = await speech.call("describe")
    available = [n for n, e in described["tts"].items() if e["available"]]
    cache = await speech.call("cache_stats")
    return {
        "status": "healthy" if available else "unhealthy", "engines": len(available), "uptime": _uptime(started),
        "version": __version__,
        "checks": {"tts_engines": {n: e["available"] for n, e in described["tts"].items()},
                   "stt_engines": {n: e["available"] for n, e in described["stt"].items()},
                   "cache": "error" not in cache},
    }


def _system() -> dict:
    import psutil

    return {"cpu_percent": psutil.cpu_percent(interval=None), "memory_percent": psutil.virtual_memory().percent,
            "disk_percent": psutil.disk_usage("/").percent, "process_count": len(psutil.pids())}


@router.get("/status")
async def status(speech: SpeechDep, started: StartedDep) -> dict:
    described = await speech.call("describe")
    return {"status": "running", "version": __version__, "uptime": _uptime(started),
            "engines": {n: {"available": e["available"], **({"reason": e["reason"]} if not e["available"] else {})}
                        for n, e in {**described["tts"], **described["stt"]}.items()},
            "cache": await speech.call("cache_stats"), "system": _system()}


@router.get("/info")
async def info(speech: SpeechDep, started: StartedDep) -> dict:
    described = await speech.call("describe")
    return {"service": SERVICE, "version": __version__, "python": platform.python_version(),
            "platform": platform.platform(), "uptime": _uptime(started),
            "tts_engines": [n for n, e in described["tts"].items() if e["available"]],
            "stt_engines": [n for n, e in described["stt"].items() if e["available"]],
            "languages": described["languages"], "formats": described["formats"], "limits": described["limits"]}


def _mask(url: str | None) -> str | None:
    if not url or "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"


@router.get("/config")
async def config(s: SettingsDep) -> dict:
    return {"default_lang": s.audio_default_lang, "default_format": s.audio_default_format,
            "max_text_length": s.audio_max_text_length, "max_batch_texts": s.audio_max_batch_texts,
            "tts_engines": s.audio_tts_engines.split(","), "stt_engines": s.audio_stt_engines.split(","),
            "cache_enabled": s.audio_cache_enabled, "cache_ttl": s.audio_cache_ttl, "cache_type": s.audio_cache_type,
            "redis_url": _mask(s.redis_url), "voices_dir": str(s.voices_dir), "environment": s.environment}


@router.get("/cache/stats")
async def cache_stats(speech: SpeechDep) -> dict:
    return await speech.call("cache_stats")


@router.post("/cache/clear")
async def cache_clear(speech: SpeechDep) -> dict:
    cleared = (await speech.call("cache_clear"))["cleared"]
    return {"message": "Cache cleared successfully", "entries_cleared": cleared}


@router.get("/cache/enabled")
async def cache_enabled(speech: SpeechDep) -> dict:
    return {"enabled": (await speech.call("cache_stats"))["enabled"]}


@router.get("/formats")
async def formats() -> dict:
    return {"formats": list(FORMATS)}


@router.get("/languages")
async def languages(speech: SpeechDep) -> dict:
    return {"languages": (await speech.call("describe"))["languages"]}


@router.get("/documentation")
async def documentation() -> dict:
    return {
        "title": SERVICE, "version": __version__, "openapi": "/openapi.json", "swagger": "/docs", "redoc": "/redoc",
        "endpoints": {
            "POST /api/v1/synth": "text -> audio file (headers X-Audio-Duration, X-Audio-Size, X-Engine-Used, X-Voice-Used)",
            "POST /api/v1/synth/batch": "1-10 texts -> base64 audio per text, errors per item",
            "GET /api/v1/synth/preview": "engine, voice and estimated duration without synthesizing",
            "GET /api/v1/engines[/{name}[/voices|/test]]": "engines, their capabilities and voices",
            "GET /api/v1/voices": "all voices (filter by engine, language)",
            "GET /api/v1/cache/stats | POST /api/v1/cache/clear": "synthesis cache",
        },
        "examples": {"curl": "curl -X POST http://HOST/api/v1/synth -H 'Content-Type: application/json' "
                             "-d '{\"text\": \"Hello, world!\", \"lang\": \"en\", \"format\": \"wav\"}' --output audio.wav"},
    }


@router.get("/metrics")
async def metrics(speech: SpeechDep, started: StartedDep) -> dict:
    counters = await speech.call("metrics")
    tts = counters["tts"].values()
    total = sum(c["requests"] for c in tts)
    failed = sum(c["failures"] for c in tts)
    seconds = sum(c["audio_seconds"] for c in tts)
    produced = total - failed - sum(c["cache_hits"] for c in tts)
    return {
        "tts_stats": {"total_synthesis": total, "successful_synthesis": total - failed, "failed_synthesis": failed,
                      "average_duration": round(seconds / produced, 3) if produced else 0.0,
                      "engines": counters["tts"]},
        "stt_stats": counters["stt"], "cache": counters["cache"],
        "system_metrics": {**_system(), "uptime": _uptime(started)}, "version": __version__,
    }


@router.get("/version")
async def version(started: StartedDep) -> dict:
    return {"version": __version__, "service": SERVICE, "status": "running", "uptime": _uptime(started)}

