"""Errors that carry the HTTP status (and a stable code) an adapter should answer with."""

from __future__ import annotations

from typing import Any


class KilnError(Exception):
    """Base error. ``status_code`` is what a server answers when this reaches it; ``details`` is
    structured context for the error body; ``code`` is a stable machine-readable name."""

    status_code = 500
    code = "INTERNAL_ERROR"

    def __init__(self, message: str = "", details: dict[str, Any] | None = None):
        super().__init__(message)
        self.details = details or {}

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args and self.args[0] else self.__class__.__name__


class BadRequest(KilnError):
    status_code = 400
    code = "BAD_REQUEST"


class Unauthorized(KilnError):
    status_code = 401
    code = "UNAUTHORIZED"


class Forbidden(KilnError):
    status_code = 403
    code = "FORBIDDEN"


class NotFound(KilnError):
    status_code = 404
    code = "NOT_FOUND"


class Conflict(KilnError):
    status_code = 409
    code = "CONFLICT"


class Timeout(KilnError):
    status_code = 504
    code = "TIMEOUT"


class InvalidInput(KilnError):
    """Request data that a model cannot take. ``field`` names the offending input (e.g. ``inputs[2]``)."""

    status_code = 422
    code = "VALIDATION_ERROR"

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}", {"field": field})


class TooLarge(KilnError):
    """Something that would take more room than a configured limit allows."""

    status_code = 413
    code = "PAYLOAD_TOO_LARGE"


class ModelNotAvailable(KilnError):
    """A catalog model (or engine) whose weights are not built or downloaded yet."""

    status_code = 503
    code = "SERVICE_UNAVAILABLE"

    def __init__(self, name: str, how_to_get: str):
        self.name = name
        self.how_to_get = how_to_get
        super().__init__(
            f"Model '{name}' is not available in this workspace. {how_to_get}",
            {"model_name": name, "how_to_get": how_to_get},
        )
