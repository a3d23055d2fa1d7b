"""What every route of the devices surface shares: seed 004's envelope ``{"success": true, "data": ...}``,
and request validation answered as its 400 INVALID_PARAMETERS (field, value, constraint) instead of a 422."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel

from kiln.device_models import InvalidParameters

T = TypeVar("T")


class Envelope(BaseModel, Generic[T]):
    success: bool = True
    data: T


def ok(data: Any) -> dict[str, Any]:
    return {"success": True, "data": data}


def _field(location: tuple) -> str:
    return ".".join(str(p) for p in location if p not in ("body", "path", "query")) or "body"


class DevicesRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Any]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                problems = exc.errors()
                first = problems[0] if problems else {"loc": ("body",), "msg": "invalid request"}
                field = _field(tuple(first.get("loc", ())))
                value = first.get("input")
                constraint = first.get("type", "valid")
                if isinstance(value, (dict, list)) and len(str(value)) > 200:
                    value = None  # the whole body: not worth echoing
                raise InvalidParameters(field, value if isinstance(value, (str, int, float, bool, type(None))) else None,
                                        constraint, f"Invalid {field}: {first.get('msg', 'invalid')}") from None

        return route
