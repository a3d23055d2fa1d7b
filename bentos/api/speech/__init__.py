"""Speech: seed 000's /synthesize and /transcribe, seed 001's /api/audio, TTSKit (seed 003) under
/api/v1, and OpenAI-compatible /v1/audio. Engines run in the audio service (bentos/audio.py)."""

from bentos.api.http import formats
from bentos.api.http.spec_limits import replace_bound
from bentos.api.http.surface import Surface
from bentos.api.speech import openai, seed000, seed001, ttskit
from bentos.api.speech.permissions import RULES
from kiln.audio.speech import SCHEMA_MAX_TEXT


def spec_limits(schema: dict, settings, paths: list[str]) -> None:
    """Every synthesis text is checked against KILN_AUDIO_MAX_TEXT_LENGTH after the schema's 5000."""
    replace_bound(schema, paths, "maxLength", SCHEMA_MAX_TEXT, settings.audio_max_text_length)


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
    spec_hooks=(spec_limits,),
)
