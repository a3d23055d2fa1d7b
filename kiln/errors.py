"""Errors that carry the HTTP status an adapter should answer with."""

from __future__ import annotations


class KilnError(Exception):
    """Base error. ``status_code`` is what a server answers when this reaches it."""

    status_code = 500

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.__class__.__name__


class InvalidInput(KilnError):
    """Request data that a model cannot take. ``field`` names the offending input (e.g. ``inputs[2]``)."""

    status_code = 422

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


class ModelNotAvailable(KilnError):
    """A catalog model whose weights are not built or downloaded yet."""

    status_code = 503

    def __init__(self, name: str, how_to_get: str):
        self.name = name
        self.how_to_get = how_to_get
        super().__init__(f"Model '{name}' is not available in this workspace. {how_to_get}")
