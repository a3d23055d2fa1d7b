"""Error bodies. Each seed keeps its own documented error format under its paths (DESIGN.md):

- seed 000 (``/``, the default):   {"success": false, "error": msg, "detail": details}
- seed 001 (``/api/...``):          {"detail": msg}
- seed 002 (auth, users, tasks, files, system/task metrics, ml): {"error": {code, message, details, timestamp, request_id}}
- seed 003 (``/api/v1/...``):       {"detail": msg, "error_type": type, "request_id": id}
- seed 004 (``/api/device`` ...):   {"success": false, "error": {code, message, details}}
- OpenAI-compatible (``/v1/...``):  {"error": {message, type, param, code}}, what OpenAI's clients parse

Every body also carries the request id (seed 003's rule, applied everywhere).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from kiln.errors import KilnError

log = logging.getLogger("kiln.api")

SEED_002_PREFIXES = ("/auth", "/users", "/tasks", "/files", "/metrics/system", "/metrics/tasks", "/ml/")
SEED_004_PREFIXES = (
    "/api/device", "/api/model/", "/api/inference", "/api/postprocessing", "/api/processing", "/api/memory",
)
STATUS_CODES = {
    400: "VALIDATION_ERROR", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT", 413: "PAYLOAD_TOO_LARGE", 422: "VALIDATION_ERROR", 429: "RATE_LIMITED",
    500: "INTERNAL_ERROR", 503: "SERVICE_UNAVAILABLE",
}
ERROR_TYPES = {
    400: "validation_error", 401: "authentication_error", 403: "authorization_error", 404: "not_found",
    409: "conflict", 413: "validation_error", 422: "validation_error", 429: "rate_limit_error",
    500: "internal_error", 503: "engine_error",
}


def request_id(request: Request) -> str:
    rid = getattr(request.state, "request_id", None) or request.headers.get("X-Request-ID")
    if not rid:
        rid = uuid.uuid4().hex
        request.state.request_id = rid
    return rid


Formatter = Callable[[int, str, str, Any, str], dict]


def seed000(status: int, message: str, code: str, details: Any, rid: str) -> dict:
    return {"success": False, "error": message, "detail": details, "request_id": rid}


def seed001(status: int, message: str, code: str, details: Any, rid: str) -> dict:
    return {"detail": message, "request_id": rid}


def seed002(status: int, message: str, code: str, details: Any, rid: str) -> dict:
    stamp = datetime.now(timezone.utc).isoformat()
    return {"error": {"code": code, "message": message, "details": details, "timestamp": stamp, "request_id": rid}}


def seed003(status: int, message: str, code: str, details: Any, rid: str) -> dict:
    # An error may name its TTSKit type itself (e.g. "text_too_long"); otherwise the status decides.
    named = details.get("error_type") if isinstance(details, dict) else None
    return {"detail": message, "error_type": named or ERROR_TYPES.get(status, "error"), "request_id": rid}


def seed004(status: int, message: str, code: str, details: Any, rid: str) -> dict:
    return {"success": False, "error": {"code": code, "message": message, "details": details}, "request_id": rid}


OPENAI_TYPES = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}


def openai(status: int, message: str, code: str, details: Any, rid: str) -> dict:
    kind = OPENAI_TYPES.get(status) or ("server_error" if status >= 500 else "invalid_request_error")
    fields = [d["field"] for d in details if isinstance(d, dict) and "field" in d] if isinstance(details, list) else []
    param = (details.get("field") if isinstance(details, dict) else None) or (fields[0] if fields else None)
    return {"error": {"message": message, "type": kind, "param": param, "code": code.lower()}, "request_id": rid}


def formatter_for(path: str) -> Formatter:
    if path.startswith("/v1/"):
        return openai
    if path.startswith("/api/v1/") or path == "/api/v1":
        return seed003
    if path.startswith(SEED_004_PREFIXES):
        return seed004
    if path.startswith("/api/"):
        return seed001
    if path.startswith(SEED_002_PREFIXES):
        return seed002
    return seed000


def error_response(
    request: Request, status: int, message: str, details: Any = None, code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The error body for ``request``'s path, in the format its seed documents."""
    rid = request_id(request)
    body = formatter_for(request.url.path)(status, message, code or STATUS_CODES.get(status, "ERROR"), details, rid)
    return JSONResponse(body, status_code=status, headers={**(headers or {}), "X-Request-ID": rid})


def _field(location: tuple) -> str:
    parts = [str(p) for p in location if p != "body"]
    return ".".join(parts) or "body"


async def kiln_error(request: Request, exc: KilnError) -> JSONResponse:
    return error_response(request, exc.status_code, exc.message, exc.details or None, exc.code)


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = [{"field": _field(e["loc"]), "message": e["msg"]} for e in exc.errors()]
    summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
    return error_response(request, 422, f"Invalid request: {summary}", problems)


async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return error_response(request, exc.status_code, str(exc.detail), None, headers=getattr(exc, "headers", None))


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("Unhandled error on %s %s", request.method, request.url.path)
    return error_response(request, 500, "Internal server error", type(exc).__name__)


def install(app: FastAPI) -> None:
    app.add_exception_handler(KilnError, kiln_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected_error)
