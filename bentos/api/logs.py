"""Log files under KILN_HOME/logs: list, read (text/plain with X-Total-Lines), clear; and request logging."""

from __future__ import annotations

import logging
import time

from fastapi import APIRouter, FastAPI, Query
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from bentos.api.deps import GatewayDep
from bentos.api.timeutil import now

router = APIRouter(prefix="/logs", tags=["logs"])
access = logging.getLogger("kiln.access")


@router.get("", summary="Log files, with sizes, and the logging setup")
async def list_logs(gateway: GatewayDep) -> dict:
    s = gateway.settings
    files = gateway.logs.list()
    return {
        "success": True,
        "log_directory": str(s.logs_dir),
        "level": s.log_level,
        "format": "JSON lines (kiln-*.log); api/dagster/mlflow.log are the servers' console output under `kiln up`",
        "rotation": {"max_bytes": s.log_max_bytes, "backups": s.log_backups},
        "files": files,
        "total_size_mb": round(sum(f["size_bytes"] for f in files) / 1e6, 3),
        "timestamp": now(),
    }


@router.get("/{log_file}", response_class=PlainTextResponse, summary="The last (or first) lines of a log file")
async def read_log(
    log_file: str,
    gateway: GatewayDep,
    lines: int | None = Query(100, ge=1, le=100_000),
    from_end: bool = Query(True),
) -> PlainTextResponse:
    text, total = await run_in_threadpool(gateway.logs.read, log_file, lines, from_end)
    return PlainTextResponse(text, headers={"X-Total-Lines": str(total), "X-Returned-Lines": str(text.count("\n"))})


@router.delete("/{log_file}", summary="Empty a log file")
async def clear_log(log_file: str, gateway: GatewayDep) -> dict:
    freed = await run_in_threadpool(gateway.logs.clear, log_file)
    access.info("log file cleared", extra={"log_file": log_file, "freed_bytes": freed})
    return {"success": True, "log_file": log_file, "cleared": True, "freed_bytes": freed, "timestamp": now()}


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


def install_request_logging(app: FastAPI) -> None:
    app.add_middleware(RequestLogMiddleware)
