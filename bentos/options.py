"""BentoML service options that Kiln's services share."""

from __future__ import annotations

from typing import Any

from kiln.settings import Settings

# BentoML 1.4.39 recycles the caller's client session every 100 requests / 300 s and the request
# that triggers it fails with "Cannot write to closing transport"; over a local socket there is
# nothing to gain from recycling, so callers keep one session (the gateway also retries once).
KEEP_RUNNER_CONNECTION = {"max_requests": 1_000_000_000, "max_age": 1e9}


def tracing(settings: Settings) -> dict[str, Any]:
    """BentoML makes an OpenTelemetry span per request (and one per ASGI send) even when no exporter
    is set and nothing is sampled: about a fifth of the gateway's CPU per request. Unless
    KILN_REQUEST_TRACING is on, every URL is excluded, so no span is made."""
    return {} if settings.request_tracing else {"excluded_urls": ["."]}
