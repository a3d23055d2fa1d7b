"""espeak-ng: formant TTS for about 100 languages (fa and ar included). Kiln drives the libespeak-ng
that piper's wheel links into ``piper/espeakbridge.so``, with the espeak-ng data piper ships."""

from __future__ import annotations

import ctypes
import threading
from pathlib import Path

import numpy as np

from kiln.audio.base import Capabilities, TTSEngine, Unavailable, Voice, base_language
from kiln.audio.io import Audio

AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_DONT_EXIT = 0x8000
CHARS_UTF8 = 1
PARAM_RATE = 1
DEFAULT_WPM = 175
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


def _shared_lock() -> threading.Lock:
    # piper phonemizes through the same libespeak-ng (global state): share its lock.
    try:
        from piper.voice import _ESPEAK_PHONEMIZER_LOCK

        return _ESPEAK_PHONEMIZER_LOCK
    except ImportError:
        return threading.Lock()


class EspeakEngine(TTSEngine):
    name = "espeak"
    description = "espeak-ng formant synthesis (many languages, very fast, robotic)"
    capabilities = Capabilities(offline=True, rate_control=True, pitch_control=True, neural=False, max_text_length=5000)
    native_rate = True

    def __init__(self) -> None:
        try:
            import piper
        except ImportError as exc:
            raise Unavailable("The espeak engine uses the libespeak-ng inside piper-tts: `pip install piper-tts`.") from exc
        package = Path(piper.__file__).parent
        library = next(package.glob("espeakbridge*.so"), None)
        self.data_dir = package / "espeak-ng-data"
        if library is None or not (self.data_dir / "phondata").is_file():
            raise Unavailable("piper-tts is installed without its espeak-ng library/data; reinstall `pip install piper-tts`.")
        self._lib = ctypes.CDLL(str(library))
        self._lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                           ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        self._lock = _shared_lock()
        self._chunks: list[np.ndarray] = []
        self._callback = _CALLBACK(self._collect)  # keep a reference: C holds the pointer
        self.sample_rate = self._initialize()
        self._voices = self._scan_voices()

    def _initialize(self) -> int:
        rate = self._lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, str(self.data_dir.parent).encode(), INITIALIZE_DONT_EXIT)
        if rate <= 0:
            raise Unavailable(f"libespeak-ng failed to initialize with data at {self.data_dir}")
        return int(rate)

    def _scan_voices(self) -> list[Voice]:
        voices = []
        for path in sorted((self.data_dir / "lang").rglob("*")):
            if not path.is_file():
                continue
            language = next((line.split()[1] for line in path.read_text(errors="ignore").splitlines()
                             if line.startswith("language ")), path.name)
            voices.append(Voice(name=path.name.lower(), engine=self.name, language=base_language(language),
                                locale=language.replace("-", "_"), sample_rate=self.sample_rate))
        # Prefer the plain language voice ("fa", "en") as each language's default.
        return sorted(voices, key=lambda v: (v.language, v.name != v.language, v.name))

    def voices(self) -> list[Voice]:
        return self._voices

    def _collect(self, wav, count, events) -> int:  # noqa: ARG002
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0

    def synthesize(self, text: str, voice: Voice, rate: float = 1.0, pitch: float = 0.0) -> Audio:
        data = text.encode("utf-8") + b"\0"
        with self._lock:
            self._initialize()  # piper may have re-initialized the shared library for phonemes only
            self._lib.espeak_SetSynthCallback(self._callback)
            if self._lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
                raise ValueError(f"espeak-ng could not select voice '{voice.name}'")
            self._lib.espeak_SetParameter(PARAM_RATE, int(min(max(DEFAULT_WPM * rate, 80), 450)), 0)
            self._chunks = []
            status = self._lib.espeak_Synth(data, len(data), 0, 0, 0, CHARS_UTF8, None, None)
            chunks, self._chunks = self._chunks, []
        if status != 0:
            raise RuntimeError(f"espeak-ng synthesis failed with status {status}")
        samples = np.concatenate(chunks).astype(np.float32) / 32768.0 if chunks else np.zeros(0, np.float32)
        return Audio(samples, self.sample_rate)
