"""The REST surface (FastAPI), mounted on the gateway service with ``@bentoml.asgi_app``."""

from __future__ import annotations

from fastapi import FastAPI

from bentos.api import audio_seed000, audio_seed001, errors, openai_audio, predict, system, ttskit
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
    for router in (audio_seed000.router, audio_seed001.router, ttskit.router, openai_audio.router):
        app.include_router(router)
    mount_outputs(app)
    install_api_options(app)
    return app


def install_api_options(app: FastAPI) -> None:
    """`kiln api` options that act inside the app: extra headers, proxy headers, root path."""
    from kiln.settings import get_settings

    settings = get_settings()
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


def mount_outputs(app: FastAPI) -> None:
    """/outputs/... serves KILN_HOME/outputs (seed 001's audio_url); StaticFiles refuses paths that leave it."""
    from fastapi.staticfiles import StaticFiles

    from kiln.settings import get_settings

    folder = get_settings().outputs_dir
    folder.mkdir(parents=True, exist_ok=True)
    app.mount("/outputs", StaticFiles(directory=folder), name="outputs")
