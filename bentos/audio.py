"""The audio service: every speech engine loaded once per worker, behind BentoML APIs the gateway calls.

Errors cross the service boundary as data (``kiln.serving.protocol``) so the gateway re-raises the
same Kiln error (status, message, details) whether this service runs in-process or as its own worker.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import bentoml

from bentos.options import KEEP_RUNNER_CONNECTION, tracing
from kiln.errors import InvalidInput, KilnError
from kiln.serving.protocol import error_reply
from kiln.settings import get_settings


@bentoml.service(name="kiln-audio", workers=1, traffic={"timeout": 300},
                 runner_connection=KEEP_RUNNER_CONNECTION, tracing=tracing(get_settings()))
class AudioService:
    def __init__(self) -> None:
        from kiln.audio.speech import Speech

        self.speech = Speech(get_settings())

    @bentoml.api
    def synthesize(self, text: str, lang: str | None = None, engine: str | None = None, voice: str | None = None,
                   rate: float = 1.0, pitch: float = 0.0, volume: float = 1.0, format: str | None = None,
                   use_cache: bool = True) -> dict[str, Any]:
        try:
            return self.speech.synthesize(text, lang, engine, voice, rate, pitch, volume, format, use_cache).to_dict()
        except KilnError as exc:
            return error_reply(exc)

    @bentoml.api
    def transcribe(self, audio_base64: str, language: str | None = None, engine: str | None = None,
                   model: str | None = None, word_timestamps: bool = False) -> dict[str, Any]:
        try:
            try:
                data = base64.b64decode(audio_base64, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise InvalidInput("file", "audio is not valid base64") from exc
            return self.speech.transcribe(data, language, engine, model, word_timestamps)
        except KilnError as exc:
            return error_reply(exc)

    @bentoml.api
    def route(self, lang: str | None = None, engine: str | None = None, voice: str | None = None,
              text: str | None = None) -> dict[str, Any]:
        """Which engine and voice a synthesis request would use (and whether its text is acceptable)."""
        try:
            if text is not None:
                self.speech.check_text(text)
            chosen, chosen_voice = self.speech.registry.route_tts(lang or self.speech.settings.audio_default_lang, engine, voice)
            return {"engine": chosen.name, "voice": chosen_voice.name, "language": chosen_voice.language}
        except KilnError as exc:
            return error_reply(exc)

    @bentoml.api
    def engine(self, name: str, kind: str = "tts") -> dict[str, Any]:
        try:
            registry = self.speech.registry
            return registry.describe_tts(name) if kind == "tts" else registry.describe_stt(name)
        except KilnError as exc:
            return error_reply(exc)

    @bentoml.api
    def voices(self, engine: str | None = None, language: str | None = None) -> dict[str, Any]:
        try:
            return {"voices": self.speech.registry.voices(engine, language)}
        except KilnError as exc:
            return error_reply(exc)

    @bentoml.api
    def describe(self) -> dict[str, Any]:
        return self.speech.describe()

    @bentoml.api
    def metrics(self) -> dict[str, Any]:
        """Counters per engine (requests, failures, audio seconds, RTF, cache hits) and the cache's stats."""
        return self.speech.metrics()

    @bentoml.api
    def cache_stats(self) -> dict[str, Any]:
        return self.speech.cache_stats()

    @bentoml.api
    def cache_clear(self) -> dict[str, Any]:
        return {"cleared": self.speech.clear_cache()}
