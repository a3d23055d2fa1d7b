"""THE permission table: one entry per route, "METHOD /path/template" -> who may call it and which rate
limit group counts it. bentos/api/access.py enforces it for every request in one place; the test
tests/bentos/test_auth_matrix.py fails for any route of the app without an entry here.

Levels (KILN_ENABLE_AUTH=true; with auth off every route is open, as in the seeds' local setups):
- PUBLIC: no credentials (health, docs, login/register/refresh).
- AUTHENTICATED: any valid credential; the route acts on the caller (profile, logout, own key).
- READ: GET info and status.
- WRITE: predict, synthesize, transcribe, generate, cache clear, uploads (includes READ).
- ADMIN: API keys, users admin, log deletion, server optimize, scaling (includes WRITE).
Rate limit groups (KILN_RATE_LIMIT_*): "generation" (write work), "status" (reads, admin), "auth" (per client
IP, against password guessing), None (not limited: /health and docs).

To add a route: one line below, in its router's section. HEAD uses the GET entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Access(str, Enum):
    PUBLIC = "public"
    AUTHENTICATED = "authenticated"
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


@dataclass(frozen=True)
class Rule:
    access: Access
    group: str | None

    @property
    def permission(self) -> str | None:
        """The key permission this rule needs, if any."""
        return self.access.value if self.access in (Access.READ, Access.WRITE, Access.ADMIN) else None


def public(group: str | None = None) -> Rule:
    return Rule(Access.PUBLIC, group)


def authenticated() -> Rule:
    return Rule(Access.AUTHENTICATED, "status")


def read() -> Rule:
    return Rule(Access.READ, "status")


def write() -> Rule:
    return Rule(Access.WRITE, "generation")


def admin() -> Rule:
    return Rule(Access.ADMIN, "status")


# Fails closed: a route missing here is treated as admin-only (and logged) until it gets its line.
MISSING = admin()

RULES: dict[str, Rule] = {
    # API docs (FastAPI)
    "GET /openapi.json": public(),
    "GET /api/docs": public(),
    "GET /docs/oauth2-redirect": public(),
    "GET /redoc": public(),
    # system (bentos/api/system.py)
    "GET /health": public(),
    "GET /info": read(),
    "GET /models": read(),
    # inference (bentos/api/predict.py, root.py)
    "POST /predict": write(),
    "POST /predict/batch": write(),
    "POST /{model_name}/predict": write(),
    "GET /": public(),  # API information; browsers get BentoML's Swagger UI here, as public as the docs
    # models (bentos/api/models.py): downloads and load/unload/optimize change the server, so admin
    "GET /models/available": read(),
    "GET /models/managed": read(),
    "GET /models/cache/info": read(),
    "GET /models/download/status/{download_id}": read(),
    "POST /models/download": admin(),
    "POST /models/manage": admin(),
    # autoscaler (bentos/api/autoscaler.py)
    "GET /autoscaler/stats": read(),
    "GET /autoscaler/health": read(),
    "GET /autoscaler/metrics": read(),
    "POST /autoscaler/scale": admin(),
    "POST /autoscaler/load": admin(),
    "DELETE /autoscaler/unload": admin(),
    # devices (bentos/api/gpu.py)
    "GET /gpu/detect": read(),
    "GET /gpu/best": read(),
    "GET /gpu/config": read(),
    "GET /gpu/report": read(),
    # server (bentos/api/server.py)
    "GET /server/config": read(),
    "GET /config": read(),
    "POST /server/optimize": admin(),
    "GET /metrics/server": read(),
    "GET /metrics/tts": read(),
    "GET /stats": read(),
    # logs (bentos/api/logs.py): names are status; contents may hold request details, so admin
    "GET /logs": read(),
    "GET /logs/{log_file}": admin(),
    "DELETE /logs/{log_file}": admin(),
    # auth and users: seeds 000 and 002 (bentos/api/auth.py)
    "POST /auth/register": public("auth"),
    "POST /users/register": public("auth"),
    "POST /auth/login": public("auth"),
    "POST /auth/refresh": public("auth"),
    "POST /auth/logout": authenticated(),
    "GET /auth/profile": authenticated(),
    "GET /users/me": authenticated(),
    "PUT /users/me": authenticated(),
    "POST /auth/generate-key": authenticated(),
    # TTSKit admin and rate limits: seed 003 (bentos/api/admin.py)
    "GET /api/v1/admin/api-keys": admin(),
    "POST /api/v1/admin/api-keys": admin(),
    "PUT /api/v1/admin/api-keys/{user_id}": admin(),
    "DELETE /api/v1/admin/api-keys/{user_id}": admin(),
    "GET /api/v1/admin/users/me": Rule(Access.WRITE, "status"),  # seed 003: "write permission"
    "GET /api/v1/admin/audit": admin(),
    "GET /api/v1/rate-limit": read(),
    # audio: seed 000 (bentos/api/audio_seed000.py)
    "POST /synthesize": write(),
    "POST /tts/synthesize": write(),
    "POST /transcribe": write(),
    "POST /stt/transcribe": write(),
    "GET /audio/health": public(),
    "GET /tts/health": public(),
    "GET /audio/models": read(),
    "POST /audio/validate": write(),  # an upload
    # audio: seed 001 (bentos/api/audio_seed001.py) and its output files
    "POST /api/audio/synthesize": write(),
    "POST /api/audio/transcribe": write(),
    "GET /outputs/{path:path}": read(),
    # TTSKit: seed 003 (bentos/api/ttskit.py); its /api/v1/health requires authentication
    "POST /api/v1/synth": write(),
    "POST /api/v1/synth/batch": write(),
    "GET /api/v1/synth/preview": write(),  # synthesizes audio
    "GET /api/v1/engines": read(),
    "GET /api/v1/engines/{engine_name}": read(),
    "GET /api/v1/engines/{engine_name}/voices": read(),
    "GET /api/v1/engines/{engine_name}/test": write(),  # synthesizes a test phrase
    "GET /api/v1/voices": read(),
    "GET /api/v1/capabilities": read(),
    "GET /api/v1/health": read(),
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
    # OpenAI-compatible audio (bentos/api/openai_audio.py)
    "POST /v1/audio/speech": write(),
    "POST /v1/audio/transcriptions": write(),
}


# BentoML's own routes: its app answers these before the API app is reached, so they have their own
# table, enforced by ServerRoutesGuard (bentos/api/access.py) with the same checks.
SERVER_RULES: dict[str, Rule] = {
    "GET /": public(),  # BentoML's Swagger index for browsers; JSON clients get the API's root
    "GET /docs.json": public(),
    "GET /schema.json": public(),
    "GET /static_content/{path:path}": public(),
    "GET /livez": public(),
    "GET /readyz": public(),
    "GET /healthz": public(),
    "GET /metrics": read(),  # Prometheus: request counts and latencies per route
}


def rule_for(method: str, path: str, rules: dict[str, Rule] = RULES) -> Rule | None:
    method = "GET" if method == "HEAD" else method
    return rules.get(f"{method} {path}")
