"""The REST surface (FastAPI), mounted on the gateway service with ``@bentoml.asgi_app``."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool

from bentos.api import admin, auth, errors, predict, system
from bentos.api.access import AccessMiddleware, document_security
from bentos.api.security import SecurityMiddleware
from kiln import __version__
from kiln.access import warn_if_exposed
from kiln.access.ratelimit import RateLimiter
from kiln.access.service import AccessControl
from kiln.settings import Settings, get_settings

EXPOSED_HEADERS = ["X-Request-ID", "X-Process-Time", "X-RateLimit-Limit", "X-RateLimit-Remaining",
                   "X-RateLimit-Reset", "Retry-After"]


@asynccontextmanager
async def lifespan(app: FastAPI):
    await run_in_threadpool(app.state.access.start)  # migrations + secret + env keys, before the first request
    yield
    app.state.access.database.dispose()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    access = AccessControl(settings)  # raises InsecureConfiguration: production refuses a default JWT secret
    app = FastAPI(
        title="Kiln",
        version=__version__,
        description="Kiln's model-serving API: prediction, model management and system information.",
        docs_url="/api/docs",  # BentoML's own Swagger UI stays at /
        redoc_url="/redoc",
        openapi_url="/openapi.json",
        lifespan=lifespan,
    )
    app.state.access = access
    app.state.limiter = RateLimiter(settings) if settings.rate_limiting else None
    errors.install(app)
    app.include_router(predict.router)
    app.include_router(system.router)
    app.include_router(auth.router)
    app.include_router(admin.router)
    # Middleware: the last added runs first. Security headers wrap everything, then CORS, then access control.
    app.add_middleware(AccessMiddleware)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_credentials="*" not in settings.cors_origins,
            allow_methods=["*"], allow_headers=["*"], expose_headers=EXPOSED_HEADERS,
        )
    app.add_middleware(SecurityMiddleware, settings=settings)
    document_security(app)
    warn_if_exposed(settings)
    return app
