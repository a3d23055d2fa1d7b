"""transformers text-to-speech models from Kiln's model store: SpeechT5 (+ HiFi-GAN vocoder in a
``vocoder/`` sub-folder and the speaker's x-vector in ``speaker_embeddings.npy``), VITS/MMS and Bark.
Each usable stored model (task ``text-to-speech``) is one voice; each belongs to a family (``FAMILIES``)."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import numpy as np

from kiln.audio.base import Capabilities, TTSEngine, Unavailable, Voice, base_language
from kiln.audio.io import Audio
from kiln.errors import ModelNotAvailable

log = logging.getLogger("kiln.audio")

TASKS = ("text-to-speech", "tts")
SUPPORTED = ("speecht5", "vits", "bark")  # config.json model_type
WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
SPEAKER_FILE = "speaker_embeddings.npy"
# The names requests use for a model family, and what to fetch for one ("mms" is Meta's VITS checkpoints).
FAMILIES = {
    "speecht5": ("microsoft/speecht5_tts with the microsoft/speecht5_hifigan vocoder in its vocoder/ folder "
                 "(POST /models/download with include_vocoder: true, or a catalog entry with vocoder:) and the "
                 f"speaker's x-vector (512 float32 values) saved as {SPEAKER_FILE} beside config.json"),
    "vits": "a VITS checkpoint, e.g. facebook/mms-tts-eng",
    "mms": "facebook/mms-tts-eng (or another facebook/mms-tts-<language>)",
    "bark": "suno/bark-small",
}
# `kiln pipeline` stores a speech model in its first stage (raw_model); its later stages evaluate and register
# classifiers and embedders only, so for a speech model they stop with an error after the weights are stored.
HOW_TO_GET = (
    "Fetch a text-to-speech model into the model store ({store}) where the hub is reachable: POST /models/download "
    "with task: text-to-speech (e.g. model_id microsoft/speecht5_tts with include_vocoder: true, facebook/mms-tts-eng "
    "or suno/bark-small), or add it to assets/catalog.yaml and let the raw_model stage of `kiln pipeline --model "
    "<name>` store it (the later stages do not apply to speech models); or place a save_pretrained() folder there "
    "with source: path. Then restart the server: speech engines read the model store at start-up."
)


def how_to_get_family(family: str, store_dir: Path | None = None) -> str:
    where = f" ({store_dir})" if store_dir else ""
    return (f"No {family} voice is stored. Get {FAMILIES[family]}: fetch it into the model store{where} as a model with "
            "task text-to-speech (POST /models/download, or the raw_model asset in Dagster for a catalog entry) where "
            "the hub is reachable, then restart the server: speech engines read the model store at start-up.")


def stored_tts_models(store_dir: Path) -> dict[str, tuple[Path, dict]]:
    """name -> (folder of the newest version, manifest info) for every text-to-speech model in the store."""
    from kiln.store import ModelStore

    found: dict[str, tuple[Path, dict]] = {}
    if not store_dir.is_dir():
        return found
    store = ModelStore(store_dir)
    for folder in sorted(p for p in store_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        latest = store.latest(folder.name)
        if latest and latest.task in TASKS:
            found[latest.name] = (latest.path, latest.info)
    return found


def _weights_problem(folder: Path, what: str) -> str | None:
    if any((folder / name).is_file() for name in WEIGHTS):
        return None
    return f"{what} at {folder} has no weights file ({' or '.join(WEIGHTS[::2])})"


def inspect_tts_model(name: str, path: Path, info: dict) -> tuple[str | None, str | None]:
    """(family, problem) of a stored TTS model, read from its files without loading it. ``problem`` names
    the file that is missing or wrong; a model with a problem is not offered as a voice."""
    config_file = path / "config.json"
    try:
        config = json.loads(config_file.read_text())
    except FileNotFoundError:
        return None, f"{config_file} is missing: the stored model is not a save_pretrained() folder"
    except (OSError, ValueError) as exc:
        return None, f"{config_file} cannot be read: {exc}"
    model_type = config.get("model_type")
    if model_type not in SUPPORTED:
        return None, (f"{config_file} says model_type '{model_type}', which is not a supported text-to-speech type "
                      f"({', '.join(SUPPORTED)})")
    family = model_type
    if model_type == "vits" and "mms" in f"{name} {info.get('id', '')}".lower():
        family = "mms"
    problem = _weights_problem(path, f"{model_type} model '{name}'")
    if problem is None and model_type == "speecht5":
        problem = _speecht5_problem(path, config)
    elif problem is None and model_type == "vits" and not (path / "vocab.json").is_file():
        problem = f"{path / 'vocab.json'} is missing: the VITS tokenizer's vocabulary"
    return family, problem


def _speecht5_problem(path: Path, config: dict) -> str | None:
    vocoder = path / "vocoder"
    if not (vocoder / "config.json").is_file():
        return (f"{vocoder / 'config.json'} is missing: SpeechT5 makes spectrograms, and needs the HiFi-GAN vocoder "
                "(microsoft/speecht5_hifigan, save_pretrained) in its vocoder/ folder; download the model with "
                "include_vocoder: true")
    problem = _weights_problem(vocoder, "The SpeechT5 vocoder")
    if problem:
        return problem
    if not (path / "spm_char.model").is_file():
        return f"{path / 'spm_char.model'} is missing: the SpeechT5 tokenizer's sentencepiece model"
    speaker = path / SPEAKER_FILE
    size = int(config.get("speaker_embedding_dim", 512))
    if not speaker.is_file():
        # No made-up voice: zeros (what an absent embedding used to become) are no speaker at all.
        return (f"{speaker} is missing: SpeechT5 speaks in the voice of a speaker x-vector ({size} float32 values, "
                "e.g. one row of Matthijs/cmu-arctic-xvectors, saved with numpy.save); Kiln ships none and does not "
                "invent one")
    try:
        import numpy

        shape = numpy.load(speaker, mmap_mode="r").shape
    except (OSError, ValueError) as exc:
        return f"{speaker} cannot be read as a numpy array: {exc}"
    if int(numpy.prod(shape)) != size:
        return f"{speaker} holds {int(numpy.prod(shape))} values; this SpeechT5 needs a {size}-value speaker x-vector"
    return None


class TransformersTTSModel:
    """One loaded model; ``synthesize`` returns float32 audio at the model's own rate."""

    def __init__(self, path: Path):
        import torch
        from transformers import AutoTokenizer

        self.path = path
        self.model_type = json.loads((path / "config.json").read_text()).get("model_type")
        if self.model_type not in SUPPORTED:
            raise Unavailable(f"Model type '{self.model_type}' at {path} is not a supported TTS type ({', '.join(SUPPORTED)})")
        self.lock = threading.Lock()
        if self.model_type == "speecht5":
            from transformers import SpeechT5ForTextToSpeech, SpeechT5HifiGan, SpeechT5Processor

            problem = _speecht5_problem(path, json.loads((path / "config.json").read_text()))
            if problem:
                raise Unavailable(problem)
            self.processor = SpeechT5Processor.from_pretrained(path)
            self.model = SpeechT5ForTextToSpeech.from_pretrained(path).eval()
            self.vocoder = SpeechT5HifiGan.from_pretrained(path / "vocoder").eval()
            size = self.model.config.speaker_embedding_dim
            # The stored speaker's x-vector (checked above): there is no default voice.
            embedding = np.load(path / SPEAKER_FILE).astype(np.float32)
            self.speaker = torch.tensor(embedding, dtype=torch.float32).reshape(1, size)
            self.sample_rate = int(self.vocoder.config.sampling_rate)
        elif self.model_type == "vits":
            from transformers import VitsModel

            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = VitsModel.from_pretrained(path).eval()
            self.sample_rate = int(self.model.config.sampling_rate)
        else:
            from transformers import BarkModel, BarkProcessor

            self.processor = BarkProcessor.from_pretrained(path)
            self.model = BarkModel.from_pretrained(path).eval()
            self.sample_rate = int(self.model.generation_config.sample_rate)

    def synthesize(self, text: str) -> np.ndarray:
        import torch

        with self.lock, torch.inference_mode():
            if self.model_type == "speecht5":
                inputs = self.processor(text=text, return_tensors="pt")
                speech = self.model.generate_speech(inputs["input_ids"], self.speaker, vocoder=self.vocoder)
            elif self.model_type == "vits":
                inputs = self.tokenizer(text, return_tensors="pt")
                if inputs["input_ids"].shape[-1] == 0:
                    raise ValueError("the model's tokenizer kept no character of this text")
                speech = self.model(**inputs).waveform[0]
            else:
                inputs = self.processor(text)
                speech = self.model.generate(**inputs)[0]
        return speech.detach().cpu().numpy().astype(np.float32).reshape(-1)


class TransformersTTSEngine(TTSEngine):
    """Every usable text-to-speech model in the store is a voice. Models whose files are missing or of an
    unsupported type are found when the engine loads (``unusable``: name -> the file and why), never at synthesis.

    SpeechT5 needs its speaker: a stored ``speaker_embeddings.npy`` x-vector. Without one the model is unusable
    (a 503 naming the file) rather than speaking with an all-zero embedding, which is no real speaker."""

    name = "transformers"
    description = "transformers TTS models from the model store (SpeechT5 + HiFi-GAN, VITS/MMS, Bark)"
    capabilities = Capabilities(offline=True, rate_control=True, pitch_control=True, neural=True, max_text_length=600)

    def __init__(self, store_dir: Path):
        self.store_dir = store_dir
        self._models: dict[str, tuple[Path, dict]] = {}
        self._families: dict[str, str | None] = {}
        self._unusable: dict[str, str] = {}
        stored = stored_tts_models(store_dir)
        for name, (path, info) in stored.items():
            family, problem = inspect_tts_model(name, path, info)
            self._families[name] = family
            if problem:
                self._unusable[name] = problem
            else:
                self._models[name] = (path, info)
        if not self._models:
            found = "".join(f" Stored but unusable: {name}: {why}." for name, why in self._unusable.items())
            raise Unavailable("No usable text-to-speech model in the model store." + found + " "
                              + HOW_TO_GET.format(store=store_dir))
        self._loaded: dict[str, TransformersTTSModel] = {}
        self._lock = threading.Lock()

    def voices(self) -> list[Voice]:
        return [Voice(name=name, engine=self.name, language=base_language(info.get("language", "en")) or "en",
                      locale=info.get("language"), quality="neural")
                for name, (_, info) in self._models.items()]

    def unusable(self) -> dict[str, str]:
        return dict(self._unusable)

    def family(self, voice: str) -> str | None:
        """speecht5, vits, mms or bark: what the stored model's config.json (and, for mms, its name or id) says."""
        return self._families.get(voice)

    def family_voices(self, family: str) -> list[Voice]:
        """The usable voices of ``family``; 'vits' includes MMS (Meta's VITS checkpoints)."""
        members = {family, "mms"} if family == "vits" else {family}
        return [v for v in self.voices() if self._families.get(v.name) in members]

    def family_unusable(self, family: str) -> dict[str, str]:
        members = {family, "mms"} if family == "vits" else {family}
        return {name: why for name, why in self._unusable.items() if self._families.get(name) in members}

    def load(self, name: str) -> TransformersTTSModel:
        """The loaded model; a stored model that cannot be loaded is a 503 naming why (not a 500 at synthesis)."""
        with self._lock:
            if name in self._unusable:
                raise ModelNotAvailable(name, self._unusable[name])
            if name not in self._loaded:
                path = self._models[name][0]
                try:
                    self._loaded[name] = TransformersTTSModel(path)
                except Exception as exc:  # whatever broke (a corrupt weights file...), this model cannot serve
                    log.warning("Stored TTS model %s cannot be loaded", name, exc_info=True)
                    why = str(exc) if isinstance(exc, Unavailable) else \
                        f"The stored model at {path} cannot be loaded: {type(exc).__name__}: {exc}"
                    self._unusable[name] = why  # from now on described as unusable, and no longer a voice
                    del self._models[name]
                    raise ModelNotAvailable(name, why) from exc
            return self._loaded[name]

    def synthesize(self, text: str, voice: Voice, rate: float = 1.0, pitch: float = 0.0) -> Audio:
        model = self.load(voice.name)
        return Audio(model.synthesize(text), model.sample_rate)
