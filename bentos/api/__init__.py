"""The REST surface (FastAPI), mounted on the gateway service with ``@bentoml.asgi_app``."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool

from bentos.api import (
    admin, audio_seed000, audio_seed001, auth, autoscaler, errors, gpu, logs, models, openai_audio, predict, root,
    server, system, ttskit,
)
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
    logs.install_request_logging(app)
    app.include_router(predict.router)  # first: the hot path is matched before every other route
    app.include_router(root.router)
    app.include_router(system.router)
    for router in (models.router, autoscaler.router, gpu.router, server.router, logs.router):
        app.include_router(router)
    for router in (audio_seed000.router, audio_seed001.router, ttskit.router, openai_audio.router):
        app.include_router(router)
    mount_outputs(app, settings)
    app.include_router(auth.router)
    app.include_router(admin.router)
    app.include_router(predict.model_router)  # last: /{model_name}/predict must not shadow fixed paths
    # Middleware: the last added runs first. Security headers wrap everything, then CORS, then access control.
    app.add_middleware(AccessMiddleware)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_credentials="*" not in settings.cors_origins,
            allow_methods=["*"], allow_headers=["*"], expose_headers=EXPOSED_HEADERS,
        )
    app.add_middleware(SecurityMiddleware, settings=settings)
    install_api_options(app, settings)
    document_security(app)
    warn_if_exposed(settings)
    return app


def install_api_options(app: FastAPI, settings: Settings) -> None:
    """`kiln api` options that act inside the app: extra headers, proxy headers, root path."""
    if settings.api_root_path:
        app.root_path = settings.api_root_path
    extra = [tuple(part.strip() for part in header.split(":", 1)) for header in settings.api_headers]
    if extra:
        @app.middleware("http")
        async def add_headers(request, call_next):
            response = await call_next(request)
            for name, value in extra:
                response.headers[name] = value
            return response
    if settings.api_proxy_headers:
        from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

        hosts = [h.strip() for h in settings.api_forwarded_allow_ips.split(",")]
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=hosts if hosts != ["*"] else "*")


def mount_outputs(app: FastAPI, settings: Settings) -> None:
    """/outputs/... serves KILN_HOME/outputs (seed 001's audio_url); StaticFiles refuses paths that leave it."""
    from fastapi.staticfiles import StaticFiles

    folder = settings.outputs_dir
    folder.mkdir(parents=True, exist_ok=True)
    app.mount("/outputs", StaticFiles(directory=folder), name="outputs")
