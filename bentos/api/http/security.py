"""Security middleware (pure ASGI, outermost): request ids, processing time, security headers, trusted
hosts and request body limits. Every response gets the headers, errors included."""

from __future__ import annotations

import re
import time
import uuid

from fastapi import HTTPException
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


def host_allowed(host: str, allowed: list[str]) -> bool:
    host = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    for pattern in allowed:
        if pattern == "*" or host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:])):
            return True
    return False


class SecurityMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings):
        self.app = app
        self.max_body = settings.max_body_bytes
        self.allowed_hosts = settings.allowed_hosts
        self.hsts = settings.hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
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

        if self.allowed_hosts != ["*"] and not host_allowed(request.headers.get("host", ""), self.allowed_hosts):
            await error_response(request, 400, "Invalid host header")(scope, receive, send_with_headers)
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
