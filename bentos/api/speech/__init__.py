"""Speech: seed 000's /synthesize and /transcribe, seed 001's /api/audio, TTSKit (seed 003) under
/api/v1, and OpenAI-compatible /v1/audio. Engines run in the audio service (bentos/audio.py)."""

from bentos.api.http import formats
from bentos.api.http.surface import Surface
from bentos.api.speech import openai, seed000, seed001, ttskit
from bentos.api.speech.permissions import RULES

SURFACE = Surface(
    name="speech",
    routers=(seed000.router, seed001.router, ttskit.router, openai.router),
    error_formats={
        "/api": formats.multimedia,  # seed 001's document: /api/audio here, the other seed 001 surfaces later
        "/outputs": formats.multimedia,  # seed 001's output files
        "/api/v1": formats.ttskit,
        "/v1": formats.openai,
    },
    rules=RULES,
)
