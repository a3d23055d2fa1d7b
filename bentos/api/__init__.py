"""The REST surface (FastAPI), mounted on the gateway service with ``@bentoml.asgi_app``.

One package per API surface (``inference/``, ``speech/``, ``access/``), each with its routers, the
error format of its paths and its lines of the permission table; ``http/`` is the layer they share.
``create_app`` only assembles them; the gateway service installs the backends the routes depend on.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from bentos.api.http import docs, errors, layer
from bentos.api.http.access import AccessMiddleware
from bentos.api.http.request_log import Traffic
from bentos.api.surfaces import SURFACES, permission_rules
from kiln import __version__
from kiln.access import warn_if_exposed
from kiln.access.ratelimit import RateLimiter
from kiln.access.service import AccessControl
from kiln.settings import Settings, get_settings


@asynccontextmanager
async def lifespan(app: FastAPI):
    await run_in_threadpool(app.state.access.start)  # migrations + secret + keys, before the first request
    yield
    app.state.access.database.dispose()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    access = AccessControl(settings)  # raises InsecureConfiguration: production refuses a default JWT secret
    app = FastAPI(
        title="Kiln",
        version=__version__,
        description="Kiln's HTTP API: the union of its five API documents (prediction, speech, users and keys, "
                    "...). Each route shows the permission it needs; see / for what this server serves.",
        docs_url=None, redoc_url=None, openapi_url=None,  # http/docs.py serves them, without CDNs
        root_path=settings.api_root_path,
        lifespan=lifespan,
    )
    app.state.access = access
    app.state.limiter = RateLimiter(settings) if settings.rate_limiting else None
    app.state.traffic = Traffic()
    rules = permission_rules()
    for surface in SURFACES:
        for router in surface.routers:
            app.include_router(router)
    mount_outputs(app, settings)
    docs.install(app, rules, [partial(hook, settings=settings, paths=surface.paths())
                              for surface in SURFACES for hook in surface.spec_hooks])
    for surface in SURFACES:
        for router in surface.late_routers:
            app.include_router(router)
    errors.install(app)  # handlers, and the fallback route (JSON 404/405) after every other route
    # Starlette runs the last added middleware first: the HTTP layer wraps access control.
    app.add_middleware(AccessMiddleware, rules=rules)
    layer.install(app, settings, app.state.traffic)
    warn_if_exposed(settings)
    return app


class OutputFiles(StaticFiles):
    """StaticFiles that answers 404 (not a 500) while the folder does not exist yet: it is made when the
    first output is written, not when the app is built."""

    async def check_config(self) -> None:
        if self.directory is not None and Path(self.directory).is_dir():
            await super().check_config()


def mount_outputs(app: FastAPI, settings: Settings) -> None:
    """/outputs/... serves KILN_HOME/outputs (seed 001's audio_url); StaticFiles refuses paths that leave it."""
    app.mount("/outputs", OutputFiles(directory=settings.outputs_dir, check_dir=False), name="outputs")
