"""The app's route table, flattened: which route template serves a request, and which methods a path allows."""

from __future__ import annotations

import re
from typing import Any

from starlette.routing import Mount, WebSocketRoute, compile_path, get_route_path
from starlette.types import Scope

Entry = tuple[re.Pattern, "frozenset[str] | None", str]
WEBSOCKET = frozenset({"WEBSOCKET"})


class RouteIndex:
    """Every route of the app with its full path template (FastAPI 0.165 nests included routers, so
    ``app.routes`` alone does not list them), compiled once and rebuilt when routes are added.
    Routes with ``include_in_index = False`` (the catch-all fallback) are left out."""

    def __init__(self) -> None:
        self._size = -1
        self._entries: list[Entry] = []

    def entries(self, app: Any) -> list[Entry]:
        routes = list(getattr(app, "routes", []))
        if len(routes) != self._size:
            entries = []
            for route in all_routes(routes):
                if not getattr(getattr(route, "original_route", route), "include_in_index", True):
                    continue
                original = getattr(route, "original_route", route)
                if isinstance(route, Mount):
                    template = route.path.rstrip("/") + "/{path:path}"
                    entries.append((compile_path(template)[0], None, template))
                elif isinstance(original, WebSocketRoute):  # its "method" in the permission table: WEBSOCKET
                    entries.append((compile_path(original.path)[0], WEBSOCKET, original.path))
                elif getattr(route, "path", None):
                    methods = getattr(route, "methods", None)
                    entries.append((compile_path(route.path)[0], frozenset(methods) if methods else None, route.path))
            self._entries, self._size = entries, len(routes)
        return self._entries

    def template(self, scope: Scope) -> str | None:
        """The path template of the route that will serve ``scope`` (None: a 404 or 405 follows)."""
        found = self.route(scope)
        return found[1] if found else None

    def route(self, scope: Scope) -> tuple[frozenset[str] | None, str] | None:
        """(methods, template) of the route that will serve ``scope``; methods None: a mount (any method)."""
        path = get_route_path(scope)
        for pattern, methods, template in self.entries(scope.get("app")):
            if pattern.match(path) and (methods is None or scope["method"] in methods):
                return methods, template
        return None

    def allowed_methods(self, scope: Scope, path: str | None = None) -> set[str]:
        """Every method some route answers on the path (for a 405's Allow header); empty: no such path."""
        path = get_route_path(scope) if path is None else path
        allowed: set[str] = set()
        for pattern, methods, _ in self.entries(scope.get("app")):
            if pattern.match(path):
                allowed |= methods or {"GET", "HEAD"}
        return allowed


def all_routes(routes: list) -> list:
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI before nested included routers
        return routes
    return [context.original_route if isinstance(context.original_route, Mount) else context
            for context in iter_route_contexts(routes)]
