"""Security middleware (pure ASGI, outermost): request ids, processing time, security headers, trusted
hosts, cross-site request refusal and request body limits. Every response gets the headers, errors included.

- Hosts: a Host header outside ``Settings.trusted_hosts`` gets 400, so a web page that rebinds its own name
  to 127.0.0.1 (DNS rebinding) cannot reach the API.
- Cross-site: a state-changing request (not GET/HEAD/OPTIONS) whose Origin, or else Referer, is present and
  neither this server's own origin nor one of KILN_CORS_ORIGINS gets 403, so a page in the user's browser
  cannot ride it with a "simple" cross-origin POST. Clients that send neither header (curl, SDKs) pass.
  WebSocket handshakes get both checks (browsers send Origin on them, and they are not CORS-protected).
"""

from __future__ import annotations

import re
import time
import uuid
from urllib.parse import urlsplit

from fastapi import HTTPException
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bentos.api.http.errors import error_response
from kiln import __version__
from kiln.settings import Settings

SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "X-XSS-Protection": "1; mode=block",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Permissions-Policy": "geolocation=(), microphone=(), camera=()",
    "X-API-Version": __version__,
    "X-Service": "kiln",
}
HSTS = "max-age=31536000; includeSubDomains"


class BodyTooLarge(HTTPException):
    """Raised from ``receive``; an HTTPException so FastAPI's body parsing passes it on (not as a 400)."""

    def __init__(self, limit: int):
        super().__init__(413, f"Request body larger than {limit} bytes (KILN_MAX_BODY_BYTES)")


SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
# Liveness/readiness probes answer any Host (Kubernetes sends the pod IP): they say only "up", so a
# rebound page learns nothing from them.
PROBES = {"/livez", "/readyz", "/healthz"}


def host_allowed(host: str, allowed: list[str]) -> bool:
    host = (host.rsplit(":", 1)[0] if not host.endswith("]") else host).lower()
    for pattern in allowed:
        if pattern == "*" or host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:])):
            return True
    return False


def request_origin(headers) -> str | None:
    """The origin a browser says the request comes from: Origin, else the scheme and host of Referer."""
    origin = headers.get("origin")
    if origin is not None:
        return origin.strip().lower()
    referer = headers.get("referer")
    if referer is None:
        return None
    parts = urlsplit(referer.strip())
    return f"{parts.scheme}://{parts.netloc}".lower() if parts.scheme and parts.netloc else "null"


def origin_allowed(origin: str, host: str, allowed_origins: list[str]) -> bool:
    """Same origin (its host:port is the Host header) or one of KILN_CORS_ORIGINS; "null" never is."""
    if "*" in allowed_origins:
        return True
    if origin in {o.rstrip("/").lower() for o in allowed_origins}:
        return True
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and parts.netloc == host.lower()


class SecurityMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings):
        self.app = app
        self.max_body = settings.max_body_bytes
        self.allowed_hosts = settings.trusted_hosts
        self.allowed_origins = settings.cors_origins
        self.hsts = settings.hsts

    def refusal(self, scope: Scope, headers) -> tuple[int, str] | None:
        """(status, message) when the Host or the Origin is not one this server answers."""
        host = headers.get("host", "")
        probe = scope.get("path") in PROBES and scope.get("method") in ("GET", "HEAD")
        if "*" not in self.allowed_hosts and not probe and not host_allowed(host, self.allowed_hosts):
            return 400, "Invalid host header"
        state_changing = scope["type"] == "websocket" or scope.get("method", "GET") not in SAFE_METHODS
        origin = request_origin(headers) if state_changing else None
        if origin is not None and not origin_allowed(origin, host, self.allowed_origins):
            return 403, f"Cross-site request refused: origin {origin!r} is not allowed (KILN_CORS_ORIGINS)"
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            if self.refusal(scope, Headers(scope=scope)) is not None:
                await receive()  # websocket.connect; closing before accept answers the handshake with 403
                await send({"type": "websocket.close", "code": 1008})
                return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request = Request(scope)
        incoming = request.headers.get("x-request-id", "")
        rid = incoming if SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        # HSTS only means something over TLS (browsers ignore it on http); "always" is for a TLS proxy in front.
        send_hsts = self.hsts == "always" or (self.hsts == "tls" and scope.get("scheme") == "https")
        response_started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = {**HEADERS, "X-Request-ID": rid, "X-Process-Time": f"{time.perf_counter() - started:.6f}"}
                if send_hsts:
                    extra["Strict-Transport-Security"] = HSTS
                message["headers"] = list(message.get("headers", [])) + [
                    (k.lower().encode(), v.encode()) for k, v in extra.items() if k.lower().encode() not in present
                ]
            await send(message)

        refused = self.refusal(scope, request.headers)
        if refused is not None:
            await error_response(request, *refused)(scope, receive, send_with_headers)
            return
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > self.max_body:
            await self._too_large(request, scope, receive, send_with_headers)
            return
        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise BodyTooLarge(self.max_body)
            return message

        try:
            await self.app(scope, counted_receive, send_with_headers)
        except BodyTooLarge:
            if response_started:
                raise
            await self._too_large(request, scope, receive, send_with_headers)

    async def _too_large(self, request: Request, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"Request body larger than {self.max_body} bytes (KILN_MAX_BODY_BYTES)"
        await error_response(request, 413, message, {"max_body_bytes": self.max_body})(scope, receive, send)
