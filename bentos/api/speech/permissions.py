"""The speech surface's lines of the permission table.

TTSKit (seed 003) marks synthesis, preview, engines, voices and capabilities "Authentication: Optional"
and seed 001 says most of its endpoints need none: with auth on, those answer anonymous callers under
the per-IP rate limit until KILN_SPEECH_REQUIRE_CREDENTIALS=true. TTSKit's "Required" routes (system,
cache, formats, metrics...) and seed 000's audio routes need a key or JWT."""

from bentos.api.http.permissions import Rules, optional, public, read, write

OPTIONAL = "speech_require_credentials"  # the Settings field that turns credentials on everywhere here

RULES: Rules = {
    # seed 000 (seed000.py)
    "POST /synthesize": write(),
    "POST /tts/synthesize": write(),
    "POST /transcribe": write(),
    "POST /stt/transcribe": write(),
    "GET /audio/health": public(),
    "GET /tts/health": public(),
    "GET /audio/models": read(),
    "POST /audio/validate": write(),  # an upload
    # seed 001 (seed001.py) and its output files
    "POST /api/audio/synthesize": optional(write(), OPTIONAL),
    "POST /api/audio/transcribe": optional(write(), OPTIONAL),
    "GET /outputs/{path:path}": optional(read(), OPTIONAL),
    # TTSKit, seed 003 (ttskit.py)
    "POST /api/v1/synth": optional(write(), OPTIONAL),
    "POST /api/v1/synth/batch": optional(write(), OPTIONAL),
    "GET /api/v1/synth/preview": optional(write(), OPTIONAL),
    "GET /api/v1/engines": optional(read(), OPTIONAL),
    "GET /api/v1/engines/{engine_name}": optional(read(), OPTIONAL),
    "GET /api/v1/engines/{engine_name}/voices": optional(read(), OPTIONAL),
    "GET /api/v1/engines/{engine_name}/test": optional(write(), OPTIONAL),  # synthesizes a test phrase
    "GET /api/v1/voices": optional(read(), OPTIONAL),
    "GET /api/v1/capabilities": optional(read(), OPTIONAL),
    "GET /api/v1/health": read(),  # TTSKit: /health is public, /api/v1/health needs credentials
    "GET /api/v1/status": read(),
    "GET /api/v1/info": read(),
    "GET /api/v1/config": read(),
    "GET /api/v1/cache/stats": read(),
    "POST /api/v1/cache/clear": write(),
    "GET /api/v1/cache/enabled": read(),
    "GET /api/v1/formats": read(),
    "GET /api/v1/languages": read(),
    "GET /api/v1/documentation": read(),
    "GET /api/v1/metrics": read(),
    "GET /api/v1/version": read(),
    # OpenAI-compatible (openai.py)
    "POST /v1/audio/speech": write(),
    "POST /v1/audio/transcriptions": write(),
}
