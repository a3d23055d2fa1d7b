"""The API docs: Swagger UI at ``/docs`` (seeds 000 and 003 put it there), ReDoc at ``/redoc``, and one
OpenAPI spec at ``/openapi.json`` (also ``/docs.json``, BentoML's name) that lists every route the server
answers, BentoML's probes and ``/metrics`` included, with each route's permission. The pages load their
scripts from this server (the ``fastapi-offline`` package's copies): nothing comes from a CDN."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from bentos.api.http.error_docs import document_errors
from bentos.api.http.errors import error_formats
from bentos.api.http.permissions import SERVER_RULES, Access, Rules, rule_for

ASSETS = "/docs/assets"
OAUTH2_REDIRECT = "/docs/oauth2-redirect"

SECURITY_SCHEMES = {
    "BearerAuth": {"type": "http", "scheme": "bearer", "description": "A JWT from /auth/login, or an API key"},
    "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "BasicAuth": {"type": "http", "scheme": "basic", "description": "A user's username and password"},
}

# BentoML's own routes (answered before the API app): documented here so the spec lists everything.
TEXT = {"content": {"text/plain": {"schema": {"type": "string"}}}}
SERVER_ROUTES = {
    "/livez": {"summary": "Liveness probe (BentoML): the server process is up", "responses": {"200": {"description": "Alive", **TEXT}}},
    "/readyz": {"summary": "Readiness probe (BentoML): every service has started", "responses": {
        "200": {"description": "Ready", **TEXT}, "503": {"description": "Still starting", **TEXT}}},
    "/healthz": {"summary": "Health probe (BentoML)", "responses": {"200": {"description": "Healthy", **TEXT}}},
    "/metrics": {"summary": "Prometheus metrics (BentoML): request counts and latencies per route",
                 "responses": {"200": {"description": "Prometheus text format", **TEXT}}},
    "/schema.json": {"summary": "BentoML's service schema", "responses": {"200": {"description": "The schema",
                     "content": {"application/json": {"schema": {"type": "object"}}}}}},
}


def assets_dir() -> Path:
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


def install(app: FastAPI, rules: Rules, hooks: Sequence[Callable[[dict[str, Any]], None]] = ()) -> None:
    """Routes for the docs pages and the spec; ``app`` must be created with docs_url/redoc_url None.
    ``hooks`` adjust the generated spec (the surfaces' configured limits)."""
    app.mount(ASSETS, StaticFiles(directory=assets_dir()), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}/openapi.json", title=f"{app.title} - Swagger UI", oauth2_redirect_url=OAUTH2_REDIRECT,
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js", swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
        )

    @app.get(OAUTH2_REDIRECT, include_in_schema=False)
    async def swagger_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}/openapi.json", title=f"{app.title} - ReDoc", redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS}/favicon.png", with_google_fonts=False,
        )

    @app.get("/openapi.json", include_in_schema=False)
    @app.get("/docs.json", include_in_schema=False)
    async def spec() -> JSONResponse:
        return JSONResponse(app.openapi())

    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            for hook in hooks:
                hook(schema)
            document_errors(schema, rules, error_formats())  # before BentoML's routes: those answer plain text
            document_server_routes(schema)
            document_security(schema, rules)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def document_server_routes(schema: dict[str, Any]) -> None:
    for path, operation in SERVER_ROUTES.items():
        schema.setdefault("paths", {})[path] = {"get": {**operation, "tags": ["probes"], "operationId": f"bentoml_{path.strip('/').replace('.', '_')}"}}


def document_security(schema: dict[str, Any], rules: Rules) -> None:
    """Show the permission table in the spec (and Swagger's Authorize button): every non-public
    operation lists the accepted credentials and carries ``x-kiln-permission``."""
    schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            rule = rule_for(method.upper(), path, rules) or rule_for(method.upper(), path, SERVER_RULES)
            if rule is None or rule.access == Access.PUBLIC:
                continue
            credentials = [{name: []} for name in SECURITY_SCHEMES]
            operation["security"] = credentials + ([{}] if rule.optional_unless else [])  # {}: anonymous allowed
            operation["x-kiln-permission"] = rule.access.value
            if rule.optional_unless:
                operation["x-kiln-anonymous"] = f"allowed unless KILN_{rule.optional_unless.upper()}=true"
