"""Error bodies, one per API document. A surface picks the format of each path prefix it serves
(``Surface.error_formats``); every body also carries the request id (seed 003's rule, kept everywhere).

- seed 000 (inference, ``/``):             {"success": false, "error": msg, "detail": details}
- seed 001 (multimedia, ``/api``):          {"detail": msg}
- seed 002 (auth, users, ...):             {"error": {code, message, details, timestamp, request_id}}
- seed 003 (TTSKit, ``/api/v1``):           {"detail": msg, "error_type": type, "request_id": id}
- OpenAI-compatible (``/v1``):              {"error": {message, type, param, code}}, what OpenAI's clients parse
- seed 004 (devices, ``/api/device`` ...):  {"success": false, "error": {code, message, details}}
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bentos.api.http.timeutil import now

# (status, message, code, details, request id) -> body
Formatter = Callable[[int, str, str, Any, str], dict]

STATUS_CODES = {
    400: "VALIDATION_ERROR", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT", 413: "PAYLOAD_TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE", 422: "VALIDATION_ERROR", 426: "UPGRADE_REQUIRED",
    429: "RATE_LIMITED", 500: "INTERNAL_ERROR", 503: "SERVICE_UNAVAILABLE", 504: "TIMEOUT",
}


def inference(status: int, message: str, code: str, details: Any, rid: str) -> dict:
    return {"success": False, "error": message, "detail": details, "request_id": rid}


def multimedia(status: int, message: str, code: str, details: Any, rid: str) -> dict:
    return {"detail": message, "request_id": rid}


def autoserve(status: int, message: str, code: str, details: Any, rid: str) -> dict:
    return {"error": {"code": code, "message": message, "details": details, "timestamp": now(), "request_id": rid}}


TTSKIT_TYPES = {
    400: "validation_error", 401: "authentication_error", 403: "authorization_error", 404: "not_found",
    405: "method_not_allowed", 409: "conflict", 413: "validation_error", 415: "validation_error",
    422: "validation_error", 429: "rate_limit_error", 500: "internal_error", 503: "engine_error", 504: "timeout",
}


def ttskit(status: int, message: str, code: str, details: Any, rid: str) -> dict:
    # An error may name its TTSKit type itself (e.g. "text_too_long"); otherwise the status decides.
    named = details.get("error_type") if isinstance(details, dict) else None
    return {"detail": message, "error_type": named or TTSKIT_TYPES.get(status, "error"), "request_id": rid}


OPENAI_TYPES = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}


def openai(status: int, message: str, code: str, details: Any, rid: str) -> dict:
    kind = OPENAI_TYPES.get(status) or ("server_error" if status >= 500 else "invalid_request_error")
    fields = [d["field"] for d in details if isinstance(d, dict) and "field" in d] if isinstance(details, list) else []
    param = (details.get("field") if isinstance(details, dict) else None) or (fields[0] if fields else None)
    return {"error": {"message": message, "type": kind, "param": param, "code": code.lower()}, "request_id": rid}


# seed 004's codes for the generic ones (its own, e.g. DEVICE_NOT_FOUND, pass through)
DEVICE_CODES = {"VALIDATION_ERROR": "INVALID_PARAMETERS", "BAD_REQUEST": "INVALID_PARAMETERS",
                "RATE_LIMITED": "RATE_LIMIT_EXCEEDED", "PAYLOAD_TOO_LARGE": "INVALID_PARAMETERS"}


def devices(status: int, message: str, code: str, details: Any, rid: str) -> dict:
    if status >= 500 and not isinstance(details, dict):  # the seed's 500s carry the error and a correlation id
        details = {"pythonError": details, "correlationId": rid}
    return {"success": False, "error": {"code": DEVICE_CODES.get(code, code), "message": message, "details": details},
            "request_id": rid}
