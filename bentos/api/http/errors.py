"""Errors as JSON in the format of the API document that owns the path (``formats.py``), for every
failure: Kiln errors, validation, HTTP errors, unhandled exceptions, and unknown paths or wrong
methods (``FallbackRoute``, the app's last route, so BentoML's plain-text 404 is never reached)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import Receive, Scope, Send

from bentos.api.http import formats
from bentos.api.http.formats import STATUS_CODES, Formatter
from bentos.api.http.routes import RouteIndex
from kiln.errors import KilnError

log = logging.getLogger("kiln.api")


class ErrorFormats:
    """Path prefix -> body format; the longest prefix that contains the path wins ("/" is the default)."""

    def __init__(self, prefixes: Mapping[str, Formatter], default: Formatter = formats.inference):
        self.default = default
        self.prefixes = sorted(((p.rstrip("/") or "/", f) for p, f in prefixes.items()), key=lambda pair: -len(pair[0]))

    def for_path(self, path: str) -> Formatter:
        for prefix, formatter in self.prefixes:
            if prefix == "/" or path == prefix or path.startswith(prefix + "/"):
                return formatter
        return self.default


@lru_cache(maxsize=1)
def error_formats() -> ErrorFormats:
    from bentos.api.surfaces import error_format_prefixes  # the surfaces declare them; imported late (they import this)

    return ErrorFormats(error_format_prefixes())


def request_id(request: Request) -> str:
    rid = getattr(request.state, "request_id", None) or request.headers.get("X-Request-ID")
    if not rid:
        rid = uuid.uuid4().hex
        request.state.request_id = rid
    return rid


def error_response(
    request: Request, status: int, message: str, details: Any = None, code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The error body for ``request``'s path, in the format its API document uses."""
    rid = request_id(request)
    body = error_formats().for_path(request.url.path)(status, message, code or STATUS_CODES.get(status, "ERROR"), details, rid)
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
    app.router.routes.append(FallbackRoute())


def not_found_or_wrong_method(request: Request, allowed: set[str]) -> JSONResponse:
    if allowed == {"WEBSOCKET"}:
        return error_response(request, 426, f"{request.url.path} is a websocket: connect with ws:// (Upgrade: websocket)",
                              {"path": request.url.path}, headers={"Upgrade": "websocket", "Connection": "Upgrade"})
    if not allowed:
        return error_response(request, 404, f"No route {request.url.path}: see /docs for the API", {"path": request.url.path})
    methods = sorted(allowed | ({"HEAD"} if "GET" in allowed else set()))
    return error_response(
        request, 405, f"Method {request.method} not allowed on {request.url.path}; allowed: {', '.join(methods)}",
        {"allowed_methods": methods}, headers={"Allow": ", ".join(methods)},
    )


class FallbackRoute(BaseRoute):
    """The app's last route: whatever no other route answered gets a JSON 404, or a 405 with ``Allow``
    when another method of the path exists (a path with a trailing slash that exists without one is
    redirected, as Starlette does). It matches every HTTP request, so BentoML's passive mount hands
    the app everything its own routes (probes, /metrics) do not claim."""

    include_in_index = False  # not a route of the permission table or the spec
    path = "/{path:path}"

    def __init__(self) -> None:
        self.index = RouteIndex()

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        return (Match.FULL, {}) if scope["type"] == "http" else (Match.NONE, {})

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        allowed = self.index.allowed_methods(scope)
        path = request.url.path
        if not allowed and path != "/" and path.endswith("/") and request.method in ("GET", "HEAD"):
            if self.index.allowed_methods(scope, path.rstrip("/")) & {"GET"}:
                url = request.url.replace(path=path.rstrip("/"))
                await RedirectResponse(str(url), status_code=307)(scope, receive, send)
                return
        await not_found_or_wrong_method(request, allowed)(scope, receive, send)
