"""The API surfaces this server answers, in the order their routers are matched, and what is joined
from them: the permission table and the error format of every path prefix."""

from __future__ import annotations

from functools import lru_cache

from bentos.api import access, devices, generation, inference, scaling, speech, tasks, training, vision
from bentos.api.http.formats import Formatter
from bentos.api.http.permissions import DOCS_RULES, Rules
from bentos.api.http.surface import Surface

SURFACES: tuple[Surface, ...] = (inference.SURFACE, speech.SURFACE, access.SURFACE, tasks.SURFACE, scaling.SURFACE,
                                 vision.SURFACE, generation.SURFACE, training.SURFACE, devices.SURFACE)


@lru_cache(maxsize=1)
def permission_rules() -> Rules:
    """The one permission table: the docs' lines and every surface's; a route in two surfaces is a bug."""
    rules: Rules = dict(DOCS_RULES)
    for surface in SURFACES:
        clash = sorted(set(rules) & set(surface.rules))
        if clash:
            raise RuntimeError(f"Surface {surface.name} repeats permission lines of another surface: {clash}")
        rules.update(surface.rules)
    return rules


def error_format_prefixes() -> dict[str, Formatter]:
    prefixes: dict[str, Formatter] = {}
    for surface in SURFACES:
        for prefix, formatter in surface.error_formats.items():
            if prefixes.get(prefix, formatter) is not formatter:
                raise RuntimeError(f"Surface {surface.name} gives {prefix} another error format than an earlier surface")
            prefixes[prefix] = formatter
    return prefixes
