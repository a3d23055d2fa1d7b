"""One structured log line per request (method, path, status, duration, request id), and the server's
own traffic counters: requests in flight, open websockets, request and error rates (GET /metrics/system)
and whatever observers want each request (the gateway's Prometheus series)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from kiln.serving.stats import LatencyWindow

access = logging.getLogger("kiln.access")


class Traffic:
    def __init__(self, window_seconds: float = 60.0):
        self.in_flight = 0
        self.websockets = 0
        self.window = LatencyWindow(window_seconds)  # every answered request; a 5xx counts as an error
        # (method, route template, status, seconds) of each answered request: templates, not paths, so a
        # metrics backend gets one series per route, whatever the ids in the paths
        self.observers: list[Callable[[str, str, int, float], None]] = []

    def rates(self) -> dict[str, Any]:
        summary = self.window.summary()
        requests = summary["requests"]
        span = max(min(summary["window_seconds"], self.window.clock() - self.window.started), 1e-3)  # young server
        return {"request_rate": round(requests / span, 3),
                "error_rate": round(summary["errors"] / requests, 4) if requests else 0.0,
                "window_seconds": summary["window_seconds"]}


class RequestLogMiddleware:
    """One structured line per API request (method, path, status, duration, request id).

    A plain ASGI middleware (BaseHTTPMiddleware costs far more per request); it replaces BentoML's
    access log, which the services turn off.
    """

    def __init__(self, app, traffic: Traffic | None = None, log_requests: bool = True) -> None:
        self.app = app
        self.traffic = traffic or Traffic()
        self.log_requests = log_requests  # off: the traffic figures are still kept, only the line is not written

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "websocket":
            self.traffic.websockets += 1
            try:
                await self.app(scope, receive, send)
            finally:
                self.traffic.websockets -= 1
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        self.traffic.in_flight += 1

        async def send_wrapper(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            seconds = time.perf_counter() - started
            self.traffic.in_flight -= 1
            self.traffic.window.record(seconds, ok=status < 500)
            if self.traffic.observers:
                route = getattr(scope.get("route"), "path", None) or "unmatched"
                for observe in self.traffic.observers:
                    observe(scope.get("method", ""), route, status, seconds)
            if self.log_requests:
                headers = dict(scope.get("headers") or [])
                state = scope.get("state") or {}
                rid = state.get("request_id") or headers.get(b"x-request-id", b"").decode("latin-1") or None
                path = scope.get("path", "")
                access.info(
                    "%s %s %s", scope.get("method"), path, status,
                    extra={"method": scope.get("method"), "path": path, "status": status,
                           "duration_ms": round(1000 * seconds, 3), "request_id": rid},
                )

