"""The engine registry: which TTS/STT engines exist, what each can do (capabilities, languages,
voices), whether it is available (and if not, how to get it), and routing by language and availability."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiln.audio.base import STTEngine, TTSEngine, Unavailable, Voice, base_language
from kiln.errors import InvalidInput, ModelNotAvailable, NotFound

log = logging.getLogger("kiln.audio")


def tts_factories(voices_dir: Path, store_dir: Path) -> dict[str, Callable[[], TTSEngine]]:
    from kiln.audio.tts_espeak import EspeakEngine
    from kiln.audio.tts_piper import PiperEngine
    from kiln.audio.tts_transformers import TransformersTTSEngine

    return {
        "piper": lambda: PiperEngine(voices_dir),
        "transformers": lambda: TransformersTTSEngine(store_dir),
        "espeak": EspeakEngine,
    }


def stt_factories(store_dir: Path, beam_size: int, temperature_fallback: bool = True) -> dict[str, Callable[[], STTEngine]]:
    from kiln.audio.stt import FasterWhisperEngine, OpenAIWhisperEngine, PocketsphinxEngine

    return {
        "faster-whisper": lambda: FasterWhisperEngine(store_dir, beam_size),
        "whisper": lambda: OpenAIWhisperEngine(store_dir, temperature_fallback),
        "pocketsphinx": PocketsphinxEngine,
    }


ALIASES = {"espeak-ng": "espeak", "espeakng": "espeak", "openai-whisper": "whisper", "faster_whisper": "faster-whisper",
           "sphinx": "pocketsphinx", "hf": "transformers", "speecht5": "transformers", "vits": "transformers",
           "mms": "transformers", "bark": "transformers"}


@dataclass
class EngineSlot:
    """One engine name: the loaded engine, or why it is not available."""

    name: str
    engine: Any = None
    reason: str = ""
    load_seconds: float = 0.0

    @property
    def available(self) -> bool:
        return self.engine is not None


def _load(name: str, factory: Callable[[], Any]) -> EngineSlot:
    started = time.perf_counter()
    try:
        engine = factory()
    except Unavailable as exc:
        return EngineSlot(name, reason=str(exc))
    except Exception as exc:  # a broken install must not take the other engines down
        log.exception("Audio engine %s failed to load", name)
        return EngineSlot(name, reason=f"{type(exc).__name__}: {exc}")
    return EngineSlot(name, engine, load_seconds=time.perf_counter() - started)


class EngineRegistry:
    def __init__(self, tts: dict[str, Callable[[], TTSEngine]], stt: dict[str, Callable[[], STTEngine]]):
        self.tts = {name: _load(name, factory) for name, factory in tts.items()}
        self.stt = {name: _load(name, factory) for name, factory in stt.items()}

    # --- lookup ---
    def _slot(self, kind: str, name: str, field: str | None) -> EngineSlot:
        slots = self.tts if kind == "tts" else self.stt
        key = ALIASES.get(name.lower(), name.lower())
        if key not in slots:
            message = f"Unknown {kind.upper()} engine '{name}'. Engines: {', '.join(slots)}"
            if field:
                raise InvalidInput(field, message)
            raise NotFound(message, {"engine": name, "engines": list(slots)})
        return slots[key]

    def slot(self, kind: str, name: str) -> EngineSlot:
        """For /engines/{name}: unknown -> 404."""
        return self._slot(kind, name, None)

    def require(self, kind: str, name: str, field: str = "engine") -> Any:
        """An available engine by name: unknown -> 422, not available -> 503 naming how to get it."""
        slot = self._slot(kind, name, field)
        if not slot.available:
            raise ModelNotAvailable(slot.name, slot.reason)
        return slot.engine

    # --- routing ---
    def route_tts(self, lang: str, engine: str | None, voice: str | None) -> tuple[TTSEngine, Voice]:
        """TTSKit's smart routing: an explicit engine/voice wins; otherwise the first available engine in
        preference order that has a voice for the language."""
        language = base_language(lang)
        voice = None if voice in (None, "", "auto", "default") else voice
        engine = None if engine in (None, "", "auto", "default") else engine
        if engine:
            chosen = self.require("tts", engine)
            if voice:
                match = next((v for v in chosen.voices() if v.name.lower() == voice.lower()), None)
                if match is None:
                    raise InvalidInput("voice", f"engine '{chosen.name}' has no voice '{voice}'. "
                                                f"Voices: {', '.join(v.name for v in chosen.voices()[:30])}")
                return chosen, match
            match = chosen.default_voice(language)
            if match is None:
                raise InvalidInput("lang", f"engine '{chosen.name}' does not speak '{lang}'. "
                                           f"Languages: {', '.join(chosen.languages())}")
            return chosen, match
        if voice:
            for slot in self.tts.values():
                if slot.available:
                    match = next((v for v in slot.engine.voices() if v.name.lower() == voice.lower()), None)
                    if match:
                        return slot.engine, match
            raise InvalidInput("voice", f"no available engine has a voice '{voice}' (see /api/v1/voices)")
        for slot in self.tts.values():
            if slot.available and (match := slot.engine.default_voice(language)):
                return slot.engine, match
        missing = [s for s in self.tts.values() if not s.available]
        if missing and not any(s.available for s in self.tts.values()):
            raise ModelNotAvailable(missing[0].name, missing[0].reason)
        raise InvalidInput("lang", f"no available engine speaks '{lang}'. Languages: {', '.join(self.languages())}")

    def route_stt(self, language: str | None, engine: str | None) -> STTEngine:
        engine = None if engine in (None, "", "auto", "default") else engine
        wanted = base_language(language) or None
        if engine:
            chosen = self.require("stt", engine)
            if wanted and wanted not in chosen.languages():
                raise InvalidInput("language", f"engine '{chosen.name}' does not recognize '{language}'. "
                                               f"Languages: {', '.join(chosen.languages())}")
            return chosen
        for slot in self.stt.values():
            if slot.available and (wanted is None or wanted in slot.engine.languages()):
                return slot.engine
        whisper = self.stt.get("whisper")
        if wanted and whisper is not None and not whisper.available:
            # Only a multilingual Whisper checkpoint would hear this language: say how to get one.
            raise ModelNotAvailable("whisper", f"No available engine recognizes '{language}'. {whisper.reason}")
        available = [s.name for s in self.stt.values() if s.available]
        if not available:
            first = next(iter(self.stt.values()))
            raise ModelNotAvailable(first.name, first.reason)
        raise InvalidInput("language", f"no available engine recognizes '{language}'")

    # --- description ---
    def describe_tts(self, name: str) -> dict[str, Any]:
        slot = self.slot("tts", name)
        if not slot.available:
            return {"name": slot.name, "available": False, "reason": slot.reason, "capabilities": None,
                    "languages": [], "voices": [], "offline": True}
        engine = slot.engine
        return {
            "name": slot.name, "available": True, "description": engine.description,
            "capabilities": engine.capabilities.to_dict(), "languages": engine.languages(),
            "voices": [v.name for v in engine.voices()], "offline": engine.capabilities.offline,
            "load_seconds": round(slot.load_seconds, 3),
        }

    def describe_stt(self, name: str) -> dict[str, Any]:
        slot = self.slot("stt", name)
        if not slot.available:
            return {"name": slot.name, "available": False, "reason": slot.reason, "capabilities": None,
                    "languages": [], "models": []}
        engine = slot.engine
        return {"name": slot.name, "available": True, "description": engine.description,
                "capabilities": engine.capabilities.to_dict(), "languages": engine.languages(),
                "models": engine.models(), "load_seconds": round(slot.load_seconds, 3)}

    def voices(self, engine: str | None = None, language: str | None = None) -> list[dict[str, Any]]:
        slots = [self.slot("tts", engine)] if engine else list(self.tts.values())
        wanted = base_language(language) if language else None
        return [v.to_dict() for s in slots if s.available for v in s.engine.voices()
                if wanted is None or v.language == wanted]

    def languages(self) -> list[str]:
        return sorted({lang for s in self.tts.values() if s.available for lang in s.engine.languages()})
