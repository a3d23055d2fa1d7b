"""Shared audio fixtures: one Speech facade (real engines, loaded once) over a store holding tiny
transformers TTS and openai-whisper models, and the piper sentences for round trips."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.settings import Settings
from tests.audio.tiny_models import save_tiny_speecht5, save_tiny_vits, save_tiny_whisper, stage

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Please call me tomorrow morning after the meeting.",
    "The weather is cold and windy in the north today.",
    "She opened the window and looked at the garden.",
    "We need more water for the long journey ahead.",
    "My brother works at the hospital near the river.",
]


@pytest.fixture(scope="session")
def audio_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("audio-home")
    store = home / "models"
    stage(store, "tiny-speecht5", "text-to-speech", save_tiny_speecht5)
    stage(store, "tiny-vits", "text-to-speech", save_tiny_vits)
    stage(store, "tiny-whisper", "speech-recognition", lambda folder: save_tiny_whisper(folder / "tiny.pt"))
    return home


@pytest.fixture(scope="session")
def speech(audio_home):
    from kiln.audio.speech import Speech

    settings = Settings(home=audio_home, audio_whisper_temperature_fallback=False, audio_cache_type="memory")
    return Speech(settings)


@pytest.fixture(scope="session")
def piper_clips(speech):
    """The round-trip sentences spoken by piper, as wav bytes."""
    return [speech.synthesize(text, lang="en", engine="piper", format="wav").audio for text in SENTENCES]
