"""The one protocol between the gateway and the services behind it (model worker, audio service).

A service never raises across the boundary: it answers an error as data, ``{"__error__": payload}``,
so one request of a merged batch can fail alone, and the gateway re-raises the same Kiln error
(status, code, message, details) whether the service runs in process or as its own worker.
"""

from __future__ import annotations

import logging
from typing import Any, TypedDict

from kiln.errors import KilnError

log = logging.getLogger("kiln.serving")

ERROR_KEY = "__error__"
VARIANT_KEY = "__variant__"  # on each prediction result: the model variant that computed it


class ErrorPayload(TypedDict):
    status: int
    code: str
    message: str
    details: Any


class ServiceError(KilnError):
    """An error a service behind the gateway reported, re-raised with that service's status and code."""

    def __init__(self, payload: ErrorPayload):
        super().__init__(payload["message"], payload.get("details") or None)
        self.status_code = int(payload.get("status", 500))
        self.code = payload.get("code", "INTERNAL_ERROR")


def error_payload(exc: BaseException) -> ErrorPayload:
    """What a service answers for ``exc``: a Kiln error keeps its status; anything else is a logged 500."""
    if isinstance(exc, KilnError):
        return {"status": exc.status_code, "code": exc.code, "message": exc.message, "details": exc.details or None}
    log.error("service call failed", exc_info=exc)
    return {"status": 500, "code": "INTERNAL_ERROR", "message": f"{type(exc).__name__}: {exc}", "details": None}


def error_reply(exc: BaseException) -> dict[str, ErrorPayload]:
    return {ERROR_KEY: error_payload(exc)}


def is_error(reply: Any) -> bool:
    return isinstance(reply, dict) and ERROR_KEY in reply


def raise_for_error(reply: Any) -> Any:
    """``reply`` itself, or the ServiceError it carries."""
    if is_error(reply):
        raise ServiceError(reply[ERROR_KEY])
    return reply
