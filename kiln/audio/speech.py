"""Speech: the one entry point the adapters call. Validates requests, routes them to an engine,
normalizes and chunks text, applies rate/pitch/volume, encodes, caches, and counts."""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from kiln.audio import io
from kiln.audio import text as textprep
from kiln.audio.cache import MemoryCache, RedisCache, cache_key
from kiln.audio.registry import EngineRegistry, stt_factories, tts_factories
from kiln.errors import BadRequest, InvalidInput, KilnError
from kiln.settings import Settings, get_settings

log = logging.getLogger("kiln.audio")

RATE_RANGE = (0.1, 3.0)
PITCH_RANGE = (-12.0, 12.0)
VOLUME_RANGE = (0.0, 4.0)
SCHEMA_MAX_TEXT = 5000  # TTSKit's request schema (1-5000); the configured limit (1000) is checked after



@contextmanager
def engine_call(counters: Any, engine: str, verb: str) -> Iterator[None]:
    """Count a failed engine call; an unexpected error becomes a KilnError that names the engine."""
    try:
        yield
    except KilnError:
        counters.record(engine, failed=True)
        raise
    except Exception as exc:
        counters.record(engine, failed=True)
        log.exception("Engine %s failed to %s", engine, verb)
        raise KilnError(f"Engine '{engine}' failed to {verb}: {type(exc).__name__}: {exc}") from exc

class TextTooLong(BadRequest):
    code = "text_too_long"

    def __init__(self, length: int, limit: int):
        super().__init__(f"Text too long: {length} characters (max: {limit})",
                         {"error_type": "text_too_long", "length": length, "max": limit})


@dataclass
class Synthesis:
    audio: bytes
    format: str
    duration: float
    sample_rate: int
    engine: str
    voice: str
    language: str
    cached: bool
    processing_time: float
    chunks: int = 1

    @property
    def size(self) -> int:
        return len(self.audio)

    @property
    def mime_type(self) -> str:
        return io.mime_type(self.format)

    def to_dict(self, with_audio: bool = True) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "audio"}
        data.update(size=self.size, mime_type=self.mime_type)
        if with_audio:
            data["audio_base64"] = base64.b64encode(self.audio).decode()
        return data


@dataclass
class EngineCounters:
    requests: int = 0
    failures: int = 0
    audio_seconds: float = 0.0
    processing_seconds: float = 0.0
    cache_hits: int = 0
    characters: int = 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["rtf"] = round(self.processing_seconds / self.audio_seconds, 4) if self.audio_seconds else None
        data["audio_seconds"] = round(self.audio_seconds, 3)
        data["processing_seconds"] = round(self.processing_seconds, 3)
        return data


@dataclass
class Counters:
    engines: dict[str, EngineCounters] = field(default_factory=lambda: defaultdict(EngineCounters))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, engine: str, audio_seconds: float = 0.0, seconds: float = 0.0, failed: bool = False,
               cached: bool = False, characters: int = 0) -> None:
        with self.lock:
            counter = self.engines[engine]
            counter.requests += 1
            counter.failures += int(failed)
            counter.cache_hits += int(cached)
            counter.characters += characters
            if not cached and not failed:
                counter.audio_seconds += audio_seconds
                counter.processing_seconds += seconds


def build_cache(settings: Settings):
    if not settings.audio_cache_enabled:
        return None
    kind = settings.audio_cache_type
    url = settings.redis_url
    if kind == "redis" or (kind == "auto" and url):
        if not url:
            raise KilnError("KILN_AUDIO_CACHE_TYPE=redis needs KILN_REDIS_URL")
        return RedisCache(url, settings.audio_cache_ttl)
    return MemoryCache(settings.audio_cache_ttl, settings.audio_cache_max_entries)


class Speech:
    def __init__(self, settings: Settings | None = None, registry: EngineRegistry | None = None):
        self.settings = settings or get_settings()
        s = self.settings
        if registry is None:
            tts = tts_factories(s.voices_dir, s.model_store_dir, (s.audio_piper_noise_scale, s.audio_piper_noise_w))
            stt = stt_factories(s.model_store_dir, s.audio_whisper_beam_size, s.audio_whisper_temperature_fallback)
            tts = {n: tts[n] for n in _names(s.audio_tts_engines) if n in tts}
            stt = {n: stt[n] for n in _names(s.audio_stt_engines) if n in stt}
            registry = EngineRegistry(tts, stt)
        self.registry = registry
        self.cache = build_cache(s)
        self.tts_counters = Counters()
        self.stt_counters = Counters()
        self.started = time.time()

    # --- synthesis ---
    def check_text(self, text: Any, field: str = "text") -> str:
        if not isinstance(text, str):
            raise InvalidInput(field, "must be a string")
        if not text.strip():
            raise InvalidInput(field, "must not be empty")
        if len(text) > self.settings.audio_max_text_length:
            raise TextTooLong(len(text), self.settings.audio_max_text_length)
        return text

    def synthesize(self, text: str, lang: str | None = None, engine: str | None = None, voice: str | None = None,
                   rate: float = 1.0, pitch: float = 0.0, volume: float = 1.0, format: str | None = None,
                   use_cache: bool = True) -> Synthesis:
        started = time.perf_counter()
        text = self.check_text(text)
        lang = lang or self.settings.audio_default_lang
        fmt = io.check_format(format or self.settings.audio_default_format)
        for name, value, (low, high) in (("rate", rate, RATE_RANGE), ("pitch", pitch, PITCH_RANGE),
                                         ("volume", volume, VOLUME_RANGE)):
            if not isinstance(value, (int, float)) or not low <= value <= high:
                raise InvalidInput(name, f"must be between {low} and {high}")
        chosen, chosen_voice = self.registry.route_tts(lang, engine, voice)
        key = cache_key(text=text, lang=lang, engine=chosen.name, voice=chosen_voice.name, rate=round(rate, 3),
                        pitch=round(pitch, 3), volume=round(volume, 3), format=fmt)
        if self.cache is not None and use_cache:
            hit = self.cache.get(key)
            if hit is not None:
                audio, meta = hit
                self.tts_counters.record(chosen.name, cached=True, characters=len(text))
                return Synthesis(audio=audio, format=fmt, duration=meta["duration"], sample_rate=meta["sample_rate"],
                                 engine=chosen.name, voice=chosen_voice.name, language=lang, cached=True,
                                 processing_time=time.perf_counter() - started, chunks=meta.get("chunks", 1))
        with engine_call(self.tts_counters, chosen.name, "synthesize"):
            chunks = textprep.chunk(textprep.normalize(text, lang), self.settings.audio_chunk_chars)
            if not chunks:
                raise InvalidInput("text", "nothing speakable is left after normalization")
            parts = [chosen.synthesize(piece, chosen_voice, rate=rate if chosen.native_rate else 1.0,
                                       pitch=pitch if chosen.native_pitch else 0.0) for piece in chunks]
            audio = io.concatenate([p for p in parts if len(p.samples)], pause_seconds=0.15)
            audio = io.apply_effects(audio, rate=rate, pitch=pitch, volume=volume,
                                     native_rate=chosen.native_rate, native_pitch=chosen.native_pitch)
            encoded = io.encode(audio, fmt)
        elapsed = time.perf_counter() - started
        self.tts_counters.record(chosen.name, audio.duration, elapsed, characters=len(text))
        if self.cache is not None and use_cache:
            try:
                self.cache.set(key, encoded, {"duration": audio.duration, "sample_rate": audio.sample_rate,
                                              "chunks": len(chunks)})
            except Exception:  # a cache outage costs speed, not the request
                log.warning("TTS cache write failed", exc_info=True)
        return Synthesis(audio=encoded, format=fmt, duration=round(audio.duration, 3), sample_rate=audio.sample_rate,
                         engine=chosen.name, voice=chosen_voice.name, language=lang, cached=False,
                         processing_time=elapsed, chunks=len(chunks))

    # --- recognition ---
    def transcribe(self, data: bytes, language: str | None = None, engine: str | None = None,
                   model: str | None = None, word_timestamps: bool = False) -> dict[str, Any]:
        """Speech to text. ``model`` names a model across engines (a stored model's name, or a Whisper size by
        any spelling: 'whisper-base', 'base', 'tiny.en'); a named model that is not stored is a 503
        (ModelNotAvailable) saying how to get it, never another model's answer. The result's ``engine`` and
        ``model`` are what really ran; ``requested_model`` is what was asked for (None: the default)."""
        started = time.perf_counter()
        if len(data) > self.settings.audio_max_upload_mb * 1024 * 1024:
            raise InvalidInput("file", f"larger than {self.settings.audio_max_upload_mb} MB")
        chosen, chosen_model = self.registry.resolve_stt(language, engine, model)
        audio = io.decode(data, max_samples=self.settings.audio_max_decoded_samples)
        audio = io.Audio(io.resample(audio.samples, audio.sample_rate, chosen.sample_rate), chosen.sample_rate)
        with engine_call(self.stt_counters, chosen.name, "transcribe"):
            result = chosen.transcribe(audio, language=language, model=chosen_model, word_timestamps=word_timestamps)
        elapsed = time.perf_counter() - started
        self.stt_counters.record(chosen.name, audio.duration, elapsed)
        body = result.to_dict()
        body["requested_model"] = model or None
        body["processing_time"] = round(elapsed, 4)
        return body

    # --- state ---
    def cache_stats(self) -> dict[str, Any]:
        if self.cache is None:
            return {"enabled": False, "hits": 0, "misses": 0, "hit_rate": 0.0, "size": 0, "entries": 0}
        try:
            return {"enabled": True, **self.cache.describe()}
        except Exception as exc:
            return {"enabled": True, "error": f"{type(exc).__name__}: {exc}"}

    def clear_cache(self) -> int:
        return self.cache.clear() if self.cache is not None else 0

    def metrics(self) -> dict[str, Any]:
        """Counters per engine: requests, failures, audio seconds, RTF (processing / audio), cache hits."""
        def dump(counters: Counters) -> dict[str, Any]:
            with counters.lock:
                return {name: c.to_dict() for name, c in counters.engines.items()}

        return {"tts": dump(self.tts_counters), "stt": dump(self.stt_counters), "cache": self.cache_stats(),
                "uptime": round(time.time() - self.started, 3)}

    def describe(self) -> dict[str, Any]:
        r = self.registry
        return {"tts": {name: r.describe_tts(name) for name in r.tts}, "stt": {name: r.describe_stt(name) for name in r.stt},
                "languages": r.languages(), "formats": list(io.FORMATS),
                "limits": {"max_text_length": self.settings.audio_max_text_length, "schema_max_text_length": SCHEMA_MAX_TEXT,
                           "max_batch_texts": self.settings.audio_max_batch_texts, "rate": RATE_RANGE, "pitch": PITCH_RANGE,
                           "volume": VOLUME_RANGE, "max_upload_mb": self.settings.audio_max_upload_mb}}


def _names(value: str) -> list[str]:
    return [name.strip() for name in value.split(",") if name.strip()]
