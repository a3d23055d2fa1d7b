"""Limits the spec shows as they are configured. A route's pydantic schema carries a hard cap (the most
any deployment allows); the server then checks the configured limit (a setting). These helpers write the
configured value into the generated spec, so a client that keeps to the spec is never refused for it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

# (the generated spec, the settings, the paths of the surface's routes) -> None
SpecHook = Callable[[dict[str, Any], Any, list[str]], None]


def _walk(node: Any, components: dict[str, Any], seen: set[str]) -> Iterable[dict[str, Any]]:
    """Every schema dict under ``node``, following $refs into the components once each."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            name = ref.rsplit("/", 1)[1]
            if name not in seen and name in components:
                seen.add(name)
                yield from _walk(components[name], components, seen)
        yield node
        for value in node.values():
            yield from _walk(value, components, seen)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value, components, seen)


def replace_bound(schema: dict[str, Any], paths: list[str], keyword: str, hard_cap: int, configured: int) -> int:
    """Set ``keyword`` (maxLength, maximum...) from ``hard_cap`` to ``configured`` in what the operations of
    ``paths`` read (parameters and request bodies). Returns how many places changed."""
    components = schema.get("components", {}).get("schemas", {})
    changed, seen = 0, set()
    for path in paths:
        for operation in schema.get("paths", {}).get(path, {}).values():
            inputs = [operation.get("parameters", []), operation.get("requestBody", {})]
            for node in _walk(inputs, components, seen):
                if node.get(keyword) == hard_cap:
                    node[keyword] = configured
                    changed += 1
    return changed
