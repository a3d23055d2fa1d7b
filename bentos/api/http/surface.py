"""One API surface: its routers, the error format of each path prefix it serves, and its lines of the
permission table. ``bentos/api/surfaces.py`` lists the surfaces; ``create_app`` assembles them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from fastapi import APIRouter

from bentos.api.http.formats import Formatter
from bentos.api.http.permissions import Rules
from bentos.api.http.spec_limits import SpecHook


@dataclass(frozen=True)
class Surface:
    name: str
    routers: Sequence[APIRouter]
    error_formats: Mapping[str, Formatter]
    rules: Rules
    # Routers whose paths start with a parameter (``/{model_name}/predict``): included after every
    # surface's fixed paths, so they never shadow one.
    late_routers: Sequence[APIRouter] = field(default_factory=tuple)
    # Adjust the generated spec to the settings (configured limits): called with the surface's paths.
    spec_hooks: Sequence[SpecHook] = field(default_factory=tuple)

    def paths(self) -> list[str]:
        return sorted({route.path for router in (*self.routers, *self.late_routers) for route in router.routes})
