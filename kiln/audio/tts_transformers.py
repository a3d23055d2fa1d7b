"""transformers text-to-speech models from Kiln's model store: SpeechT5 (+ HiFi-GAN vocoder in a
``vocoder/`` sub-folder), VITS/MMS and Bark. Each stored model (task ``text-to-speech``) is one voice."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np

from kiln.audio.base import Capabilities, TTSEngine, Unavailable, Voice, base_language
from kiln.audio.io import Audio

TASKS = ("text-to-speech", "tts")
SUPPORTED = ("speecht5", "vits", "bark")
HOW_TO_GET = (
    "Add a text-to-speech model to assets/catalog.yaml (e.g. source: huggingface, id: microsoft/speecht5_tts "
    "with microsoft/speecht5_hifigan saved in its vocoder/ folder, or facebook/mms-tts-eng, or suno/bark-small; "
    "task: text-to-speech) and run `kiln pipeline --model <name>` on a machine with hub access, "
    "or place a save_pretrained() folder in the model store ({store})."
)


def stored_tts_models(store_dir: Path) -> dict[str, tuple[Path, dict]]:
    """name -> (folder of the newest version, manifest info) for every text-to-speech model in the store."""
    from kiln.store import ModelStore

    found: dict[str, tuple[Path, dict]] = {}
    if not store_dir.is_dir():
        return found
    store = ModelStore(store_dir)
    for folder in sorted(p for p in store_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        latest = store.latest(folder.name)
        if latest and latest.task in TASKS and (latest.path / "config.json").is_file():
            found[latest.name] = (latest.path, latest.info)
    return found


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

            if not (path / "vocoder" / "config.json").is_file():
                raise Unavailable(f"SpeechT5 at {path} has no vocoder/ folder: save microsoft/speecht5_hifigan there.")
            self.processor = SpeechT5Processor.from_pretrained(path)
            self.model = SpeechT5ForTextToSpeech.from_pretrained(path).eval()
            self.vocoder = SpeechT5HifiGan.from_pretrained(path / "vocoder").eval()
            embedding_file = path / "speaker_embeddings.npy"
            size = self.model.config.speaker_embedding_dim
            embedding = np.load(embedding_file) if embedding_file.is_file() else np.zeros(size, dtype=np.float32)
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
    name = "transformers"
    description = "transformers TTS models from the model store (SpeechT5 + HiFi-GAN, VITS/MMS, Bark)"
    capabilities = Capabilities(offline=True, rate_control=True, pitch_control=True, neural=True, max_text_length=600)

    def __init__(self, store_dir: Path):
        self.store_dir = store_dir
        self._models: dict[str, tuple[Path, dict]] = stored_tts_models(store_dir)
        if not self._models:
            raise Unavailable("No text-to-speech model in the model store. " + HOW_TO_GET.format(store=store_dir))
        self._loaded: dict[str, TransformersTTSModel] = {}
        self._lock = threading.Lock()

    def voices(self) -> list[Voice]:
        return [Voice(name=name, engine=self.name, language=base_language(info.get("language", "en")) or "en",
                      locale=info.get("language"), quality="neural")
                for name, (_, info) in self._models.items()]

    def load(self, name: str) -> TransformersTTSModel:
        with self._lock:
            if name not in self._loaded:
                self._loaded[name] = TransformersTTSModel(self._models[name][0])
            return self._loaded[name]

    def synthesize(self, text: str, voice: Voice, rate: float = 1.0, pitch: float = 0.0) -> Audio:
        model = self.load(voice.name)
        return Audio(model.synthesize(text), model.sample_rate)
