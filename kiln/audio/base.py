"""The two engine interfaces (TTS and STT) and the records they exchange."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any

from kiln.audio.io import Audio


def base_language(code: str | None) -> str:
    """'en_US', 'en-us', 'EN' -> 'en'."""
    return (code or "").replace("_", "-").split("-")[0].lower()


@dataclass
class Voice:
    name: str
    engine: str
    language: str  # base code, e.g. "en"
    locale: str | None = None  # e.g. "en_US"
    gender: str | None = None
    quality: str | None = None
    sample_rate: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Capabilities:
    offline: bool = True
    ssml: bool = False
    rate_control: bool = True
    pitch_control: bool = True
    max_text_length: int = 5000
    neural: bool = False
    language_detection: bool = False
    timestamps: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Segment:
    id: int
    start: float
    end: float
    text: str
    confidence: float | None = None
    words: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Transcription:
    text: str
    language: str | None
    language_probability: float | None
    duration: float
    segments: list[Segment]
    engine: str
    model: str

    @property
    def confidence(self) -> float | None:
        scored = [(s.confidence, s.end - s.start) for s in self.segments if s.confidence is not None]
        total = sum(max(d, 1e-3) for _, d in scored)
        return round(sum(c * max(d, 1e-3) for c, d in scored) / total, 4) if scored else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text, "language": self.language, "language_probability": self.language_probability,
            "duration": self.duration, "confidence": self.confidence, "engine": self.engine, "model": self.model,
            "segments": [s.to_dict() for s in self.segments],
        }


class Unavailable(Exception):
    """Raised by an engine's loader when its model is not present; the message says how to get it."""


class TTSEngine(ABC):
    name: str
    description: str = ""
    capabilities: Capabilities = Capabilities()
    # rate/pitch the engine applies itself; the rest is done on the waveform (kiln.audio.io)
    native_rate: bool = False
    native_pitch: bool = False

    @abstractmethod
    def voices(self) -> list[Voice]: ...

    def languages(self) -> list[str]:
        return sorted({v.language for v in self.voices()})

    def default_voice(self, language: str) -> Voice | None:
        matching = [v for v in self.voices() if v.language == base_language(language)]
        return matching[0] if matching else None

    @abstractmethod
    def synthesize(self, text: str, voice: Voice, rate: float = 1.0, pitch: float = 0.0) -> Audio:
        """One chunk of normalized text to audio (rate/pitch only if native_*)."""


class STTEngine(ABC):
    name: str
    description: str = ""
    capabilities: Capabilities = Capabilities(rate_control=False, pitch_control=False, timestamps=True)
    sample_rate = 16_000

    @abstractmethod
    def models(self) -> list[str]: ...

    def languages(self) -> list[str]:
        return ["en"]

    @abstractmethod
    def transcribe(self, audio: Audio, language: str | None = None, model: str | None = None,
                   word_timestamps: bool = False) -> Transcription:
        """Audio already resampled to ``sample_rate``."""
