"""The two engine interfaces (TTS and STT) and the records they exchange."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any

from kiln.audio.io import Audio
from kiln.errors import ModelNotAvailable


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


# Every Whisper model name openai-whisper and faster-whisper download by (whisper.available_models() and
# faster_whisper.available_models(); listed here so naming one costs no import).
WHISPER_SIZES = (
    "tiny.en", "tiny", "base.en", "base", "small.en", "small", "medium.en", "medium", "large-v1", "large-v2",
    "large-v3", "large", "large-v3-turbo", "turbo", "distil-large-v2", "distil-medium.en", "distil-small.en",
    "distil-large-v3", "distil-large-v3.5",
)


def whisper_size(name: str | None) -> str | None:
    """The Whisper model size a name means, or None: 'whisper-base', 'whisper_base', 'openai/whisper-base',
    'Systran/faster-whisper-base', 'base' -> 'base'; 'tiny.en', 'whisper-tiny-en' -> 'tiny.en'."""
    if not name:
        return None
    value = name.strip().lower().rsplit("/", 1)[-1].replace("_", "-")
    for prefix in ("faster-whisper-", "whisper-"):
        if value.startswith(prefix):
            value = value[len(prefix):]
    if value.endswith("-en"):
        value = value[:-3] + ".en"
    return value if value in WHISPER_SIZES else None


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

    def unusable(self) -> dict[str, str]:
        """Voices whose model is present but cannot run, with why (e.g. the missing file)."""
        return {}


class STTEngine(ABC):
    name: str
    description: str = ""
    capabilities: Capabilities = Capabilities(rate_control=False, pitch_control=False, timestamps=True)
    sample_rate = 16_000

    @abstractmethod
    def models(self) -> list[str]: ...

    def languages(self) -> list[str]:
        return ["en"]

    def model_size(self, model: str) -> str | None:
        """The Whisper size ``model`` is: as the engine recorded it (``sizes``, e.g. from a checkpoint's file
        name), else read from the name itself (see ``whisper_size``); None when it is not a Whisper model."""
        return getattr(self, "sizes", {}).get(model) or whisper_size(model)

    def model_languages(self, model: str) -> list[str]:
        """What ``model`` hears: Whisper's '.en' checkpoints hear English only."""
        english_only = model.endswith(".en") or (self.model_size(model) or "").endswith(".en")
        return ["en"] if english_only else self.languages()

    def find_model(self, requested: str) -> str | None:
        """The model this engine holds under ``requested``: its own name, or the same Whisper size by any spelling."""
        wanted = requested.strip().lower()
        for model in self.models():
            if model.lower() == wanted:
                return model
        size = whisper_size(requested)
        return next((m for m in self.models() if size is not None and self.model_size(m) == size), None)

    def how_to_get(self, model: str) -> str:
        """Where the files of ``model`` come from and where they go for this engine."""
        return f"Engine '{self.name}' has no model '{model}'. Models: {', '.join(self.models())}."

    def resolve(self, model: str | None, language: str | None = None) -> str:
        """The model that will run: the one named (by any spelling of its name or Whisper size), or the default
        for ``language``. A named model this engine does not hold is a 503 saying how to get it."""
        if not model:
            return self.default_model(language)
        found = self.find_model(model)
        if found is None:
            raise ModelNotAvailable(model, self.how_to_get(model))
        return found

    def default_model(self, language: str | None = None) -> str:
        """The model that runs when none is named: the first one that hears ``language``."""
        wanted = base_language(language)
        if wanted:
            for model in self.models():
                if wanted in self.model_languages(model):
                    return model
        return self.models()[0]

    @abstractmethod
    def transcribe(self, audio: Audio, language: str | None = None, model: str | None = None,
                   word_timestamps: bool = False) -> Transcription:
        """Audio already resampled to ``sample_rate``."""
