"""``GET /``: API information and the list of endpoints.

BentoML mounts this FastAPI app with a "passive" mount that asks each route whether it matches, ahead of
its own Swagger index at ``/``. ``JsonOnlyRoute`` matches only requests that ask for JSON
(``Accept: application/json`` without text/html, or ``/?format=json``), so browsers keep BentoML's
Swagger UI at ``/`` and API clients get the API information.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from fastapi import APIRouter
from fastapi.routing import APIRoute
from starlette.routing import Match

from bentos.api.deps import GatewayDep
from bentos.api.timeutil import now
from kiln import __version__


def wants_json(scope: dict) -> bool:
    headers = dict(scope.get("headers") or [])
    accept = headers.get(b"accept", b"").decode("latin-1").lower()
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return "json" in query.get("format", []) or ("application/json" in accept and "text/html" not in accept)


class JsonOnlyRoute(APIRoute):
    def matches(self, scope):
        if scope.get("type") == "http" and not wants_json(scope):
            return Match.NONE, {}
        return super().matches(scope)


router = APIRouter(tags=["system"], route_class=JsonOnlyRoute)


@router.get("/", summary="API information and endpoints (send Accept: application/json)")
async def root(gateway: GatewayDep) -> dict:
    from bentos.gateway import app  # the FastAPI app (request.app is BentoML's outer app here)

    endpoints = [
        {"path": path, "methods": sorted(m.upper() for m in operations), "summary": next(iter(operations.values())).get("summary")}
        for path, operations in app.openapi()["paths"].items()
    ]
    return {
        "success": True,
        "name": "Kiln inference API",
        "version": __version__,
        "description": "Model serving: prediction with adaptive batching, model management, autoscaling, devices, server and logs.",
        "status": "running",
        "served_models": sorted(gateway.models),
        "docs": {"swagger": "/", "fastapi_swagger": "/api/docs", "redoc": "/redoc", "openapi": "/openapi.json"},
        "endpoints": sorted(endpoints, key=lambda e: e["path"]),
        "timestamp": now(),
    }
