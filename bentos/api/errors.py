"""Seed 000's error format, ``{"success": false, "error", "detail"}``, for every failure."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from kiln.catalog import UnknownModel
from kiln.errors import InvalidInput, KilnError, ModelNotAvailable

log = logging.getLogger("kiln.api")


def error_body(error: str, detail: object = None) -> dict:
    return {"success": False, "error": error, "detail": detail}


def _field(location: tuple) -> str:
    parts = [str(p) for p in location if p != "body"]
    return ".".join(parts) or "body"


async def kiln_error(request: Request, exc: KilnError) -> JSONResponse:
    detail: object = None
    if isinstance(exc, UnknownModel):
        detail = {"model_name": exc.name, "available_models": exc.available}
    elif isinstance(exc, InvalidInput):
        detail = {"field": exc.field}
    elif isinstance(exc, ModelNotAvailable):
        detail = {"model_name": exc.name, "how_to_get": exc.how_to_get}
    return JSONResponse(error_body(exc.message, detail), status_code=exc.status_code)


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = [{"field": _field(e["loc"]), "message": e["msg"]} for e in exc.errors()]
    summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
    return JSONResponse(error_body(f"Invalid request: {summary}", problems), status_code=422)


async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return JSONResponse(error_body(str(exc.detail), None), status_code=exc.status_code, headers=exc.headers)


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("Unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(error_body("Internal server error", type(exc).__name__), status_code=500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(KilnError, kiln_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected_error)
