"""One structured log line per request (method, path, status, duration, request id)."""

from __future__ import annotations

import logging
import time

access = logging.getLogger("kiln.access")


class RequestLogMiddleware:
    """One structured line per API request (method, path, status, duration, request id).

    A plain ASGI middleware (BaseHTTPMiddleware costs far more per request); it replaces BentoML's
    access log, which the services turn off.
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            headers = dict(scope.get("headers") or [])
            state = scope.get("state") or {}
            rid = state.get("request_id") or headers.get(b"x-request-id", b"").decode("latin-1") or None
            path = scope.get("path", "")
            access.info(
                "%s %s %s", scope.get("method"), path, status,
                extra={"method": scope.get("method"), "path": path, "status": status,
                       "duration_ms": round(1000 * (time.perf_counter() - started), 3), "request_id": rid},
            )

