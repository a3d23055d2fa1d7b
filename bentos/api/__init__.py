"""The REST surface (FastAPI), mounted on the gateway service with ``@bentoml.asgi_app``."""

from __future__ import annotations

from fastapi import FastAPI

from bentos.api import errors, predict, system
from kiln import __version__


def create_app() -> FastAPI:
    app = FastAPI(
        title="Kiln",
        version=__version__,
        description="Kiln's model-serving API: prediction, model management and system information.",
        docs_url="/api/docs",  # BentoML's own Swagger UI stays at /
        redoc_url="/redoc",
        openapi_url="/openapi.json",
    )
    errors.install(app)
    app.include_router(predict.router)
    app.include_router(system.router)
    return app
