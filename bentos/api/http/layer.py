"""Kiln's HTTP layer: what every response of the server passes through, whichever app answers it.

Outermost first: forwarded headers from trusted proxies (``kiln api --proxy-headers``), security
headers with request id and processing time (plus trusted hosts, cross-site refusal and body limits),
JSON bodies that would crash a route (lone surrogates, deep nesting), CORS, extra headers
from ``kiln api --header``, and one structured log line per request. The API app gets it as
middleware; BentoML's own routes get it from ``BentoRoutesLayer``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bentos.api.http.json_guard import JsonGuardMiddleware
from bentos.api.http.request_log import RequestLogMiddleware, Traffic
from bentos.api.http.security import SecurityMiddleware
from kiln.settings import Settings

EXPOSED_HEADERS = ["X-Request-ID", "X-Process-Time", "X-RateLimit-Limit", "X-RateLimit-Remaining",
                   "X-RateLimit-Reset", "Retry-After", "X-Model-Version", "X-MLflow-Run-Id", "X-Dagster-Run-Id"]


class ExtraHeaders:
    """Response headers configured with ``kiln api --header 'Name: value'`` (KILN_API_HEADERS)."""

    def __init__(self, app: ASGIApp, headers: list[tuple[str, str]]):
        self.app = app
        self.headers = [(name.lower().encode(), value.encode()) for name, value in headers]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + self.headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def middleware(settings: Settings, traffic: Traffic | None = None) -> Iterator[tuple[type, dict[str, Any]]]:
    """(class, options) of each layer, outermost first."""
    if settings.api_proxy_headers:
        from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

        hosts = [h.strip() for h in settings.api_forwarded_allow_ips.split(",")]
        yield ProxyHeadersMiddleware, {"trusted_hosts": hosts if hosts != ["*"] else "*"}
    yield SecurityMiddleware, {"settings": settings}
    yield JsonGuardMiddleware, {}
    if settings.cors_origins:
        yield CORSMiddleware, {
            "allow_origins": settings.cors_origins, "allow_credentials": "*" not in settings.cors_origins,
            "allow_methods": ["*"], "allow_headers": ["*"], "expose_headers": EXPOSED_HEADERS,
        }
    extra = [tuple(part.strip() for part in header.split(":", 1)) for header in settings.api_headers]
    if extra:
        yield ExtraHeaders, {"headers": extra}
    yield RequestLogMiddleware, {"traffic": traffic, "log_requests": settings.api_access_log}


def install(app: Any, settings: Settings, traffic: Traffic) -> None:
    """Add the layer to a FastAPI app (Starlette runs the last added middleware first)."""
    for cls, options in reversed(list(middleware(settings, traffic))):
        app.add_middleware(cls, **options)


def wrap(inner: ASGIApp, settings: Settings, traffic: Traffic | None = None) -> ASGIApp:
    """The layer around a plain ASGI app."""
    for cls, options in reversed(list(middleware(settings, traffic))):
        inner = cls(inner, **options)
    return inner
