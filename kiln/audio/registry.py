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


def tts_factories(voices_dir: Path, store_dir: Path, piper_noise: tuple[float | None, float | None] = (None, None),
                  ) -> dict[str, Callable[[], TTSEngine]]:
    from kiln.audio.tts_espeak import EspeakEngine
    from kiln.audio.tts_piper import PiperEngine
    from kiln.audio.tts_transformers import TransformersTTSEngine

    return {
        "piper": lambda: PiperEngine(voices_dir, *piper_noise),
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
# Engine names that are model families of the transformers engine: they answer with a voice of that family only.
TTS_FAMILIES = ("speecht5", "vits", "mms", "bark")


def tts_family(engine: str | None) -> str | None:
    return engine.lower() if engine and engine.lower() in TTS_FAMILIES else None


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
        if tts_family(engine):
            return self._route_family(tts_family(engine), language, lang, voice)
        if engine:
            chosen = self.require("tts", engine)
            if voice:
                match = next((v for v in chosen.voices() if v.name.lower() == voice.lower()), None)
                if match is None:
                    self._raise_if_unusable(chosen, voice)
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
            for slot in self.tts.values():
                if slot.available:
                    self._raise_if_unusable(slot.engine, voice)
            raise InvalidInput("voice", f"no available engine has a voice '{voice}' (see /api/v1/voices)")
        for slot in self.tts.values():
            if slot.available and (match := slot.engine.default_voice(language)):
                return slot.engine, match
        missing = [s for s in self.tts.values() if not s.available]
        if missing and not any(s.available for s in self.tts.values()):
            raise ModelNotAvailable(missing[0].name, missing[0].reason)
        raise InvalidInput("lang", f"no available engine speaks '{lang}'. Languages: {', '.join(self.languages())}")

    @staticmethod
    def _raise_if_unusable(engine: TTSEngine, voice: str) -> None:
        """A voice whose model is stored but cannot run: 503 naming the missing file, not 'no such voice'."""
        for name, why in engine.unusable().items():
            if name.lower() == voice.lower():
                raise ModelNotAvailable(name, why)

    def _route_family(self, family: str, language: str, lang: str, voice: str | None) -> tuple[TTSEngine, Voice]:
        """'bark', 'vits', 'mms', 'speecht5': a stored voice of that family, or a 503 saying how to get one."""
        from kiln.audio.tts_transformers import how_to_get_family

        slot = self.tts.get("transformers")
        if slot is None or not slot.available:
            raise ModelNotAvailable(family, how_to_get_family(family) + (f" ({slot.reason})" if slot else ""))
        engine = slot.engine
        voices = engine.family_voices(family)
        if voice:
            match = next((v for v in voices if v.name.lower() == voice.lower()), None)
            if match is None:
                self._raise_if_unusable(engine, voice)
                raise InvalidInput("voice", f"'{voice}' is not a stored {family} voice. {family} voices: "
                                            f"{', '.join(v.name for v in voices) or 'none'}")
            return engine, match
        if not voices:
            broken = engine.family_unusable(family)
            if broken:
                name, why = next(iter(broken.items()))
                raise ModelNotAvailable(name, why)
            raise ModelNotAvailable(family, how_to_get_family(family, engine.store_dir))
        match = next((v for v in voices if v.language == language), None)
        if match is None:
            raise InvalidInput("lang", f"no stored {family} voice speaks '{lang}'. "
                                       f"Languages: {', '.join(sorted({v.language for v in voices}))}")
        return engine, match

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

    def resolve_stt(self, language: str | None, engine: str | None = None,
                    model: str | None = None) -> tuple[STTEngine, str]:
        """The engine and the model that will really run a transcription.

        A named model is looked up in every available engine (or the one named): by its stored name, or by
        its Whisper size under any spelling ('whisper-base', 'base', 'openai/whisper-base'). A Whisper model
        no engine holds is a 503 saying which files to put where; nothing else stands in for it.
        """
        from kiln.audio.base import whisper_size
        from kiln.audio.stt import WHISPER_ENGINES, how_to_get_stt

        model = None if model in (None, "", "auto", "default") else model
        if model is None:
            chosen = self.route_stt(language, engine)
            return chosen, chosen.default_model(language)
        engine = None if engine in (None, "", "auto", "default") else engine
        slots = [self._slot("stt", engine, "engine")] if engine else list(self.stt.values())
        wanted = base_language(language) or None
        for slot in slots:
            found = slot.engine.find_model(model) if slot.available else None
            if found is not None:
                if wanted and wanted not in slot.engine.model_languages(found):
                    raise InvalidInput("language", f"model '{found}' ({slot.name}) does not recognize '{language}'. "
                                                   f"Languages: {', '.join(slot.engine.model_languages(found))}")
                return slot.engine, found
        if engine and not slots[0].available:
            raise ModelNotAvailable(slots[0].name, slots[0].reason)
        held = [m for s in self.stt.values() if s.available for m in s.engine.models()]
        if whisper_size(model) is None:  # not stored and not a Whisper model: there is nothing to fetch
            raise InvalidInput("model", f"unknown speech-recognition model '{model}'. Models here: {', '.join(held)}")
        if engine and slots[0].name not in WHISPER_ENGINES:
            raise InvalidInput("model", f"engine '{slots[0].name}' runs no Whisper model (models: "
                                        f"{', '.join(slots[0].engine.models())}); Whisper runs on {', '.join(WHISPER_ENGINES)}")
        raise ModelNotAvailable(model, how_to_get_stt(model, slots[0].name if engine else None)
                                + f" Models here now: {', '.join(held) or 'none'}.")

    # --- description ---
    def describe_tts(self, name: str) -> dict[str, Any]:
        """An engine (or a transformers family: bark, vits, mms, speecht5), whether it can speak, and if not why.
        ``unusable`` lists stored models that cannot run, each with the file that is missing."""
        slot = self.slot("tts", name)
        family = tts_family(name)
        if not slot.available:
            reason = slot.reason
            if family:
                from kiln.audio.tts_transformers import how_to_get_family

                reason = how_to_get_family(family)
            return {"name": family or slot.name, "available": False, "reason": reason, "capabilities": None,
                    "languages": [], "voices": [], "offline": True, "unusable": {}}
        engine = slot.engine
        voices = engine.family_voices(family) if family else engine.voices()
        unusable = engine.family_unusable(family) if family else engine.unusable()
        described = {
            "name": family or slot.name, "available": bool(voices), "description": engine.description,
            "capabilities": engine.capabilities.to_dict(),
            "languages": sorted({v.language for v in voices}) if family else engine.languages(),
            "voices": [v.name for v in voices], "offline": engine.capabilities.offline,
            "load_seconds": round(slot.load_seconds, 3), "unusable": unusable,
        }
        if family:
            described["engine"] = slot.name
        if family and not voices:
            from kiln.audio.tts_transformers import how_to_get_family

            described["reason"] = next(iter(unusable.values()), None) or how_to_get_family(family, engine.store_dir)
        return described

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
        family = tts_family(engine)
        return [v.to_dict() for s in slots if s.available
                for v in (s.engine.family_voices(family) if family else s.engine.voices())
                if wanted is None or v.language == wanted]

    def languages(self) -> list[str]:
        return sorted({lang for s in self.tts.values() if s.available for lang in s.engine.languages()})
