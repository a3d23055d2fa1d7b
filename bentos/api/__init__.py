"""The REST surface (FastAPI), mounted on the gateway service with ``@bentoml.asgi_app``.

One package per API surface (``inference/``, ``speech/``, ``access/``), each with its routers, the
error format of its paths and its lines of the permission table; ``http/`` is the layer they share.
``create_app`` only assembles them; the gateway service installs the backends the routes depend on.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from kiln import __version__
from kiln.settings import Settings, get_settings

if TYPE_CHECKING:
    from fastapi import FastAPI


@asynccontextmanager
async def lifespan(app: FastAPI):
    await run_in_threadpool(app.state.access.start)  # migrations + secret + keys, before the first request
    yield
    app.state.access.database.dispose()


def create_app(settings: Settings | None = None) -> FastAPI:
    app = app_shell(settings)
    assemble(app, settings)
    return app


def app_shell(settings: Settings | None = None) -> FastAPI:
    """The FastAPI app without its routes: cheap to make. The gateway module makes it at import (BentoML
    mounts it then) and ``assemble`` fills it in the gateway process only, because BentoML imports that
    module in every process it starts, and the routers of every surface cost seconds of each one's start."""
    from fastapi import FastAPI

    settings = settings or get_settings()
    return FastAPI(
        title="Kiln",
        version=__version__,
        description="Kiln's HTTP API: the union of its five API documents (prediction, speech, users and keys, "
                    "...). Each route shows the permission it needs; see / for what this server serves.",
        docs_url=None, redoc_url=None, openapi_url=None,  # http/docs.py serves them, without CDNs
        root_path=settings.api_root_path,
        lifespan=lifespan,
    )


def assemble(app: FastAPI, settings: Settings | None = None) -> None:
    """Access control, the routers of every surface, docs, errors and the HTTP layer, once per app."""
    from bentos.api.http import docs, errors, layer
    from bentos.api.http.access import AccessMiddleware
    from bentos.api.http.request_log import Traffic
    from bentos.api.surfaces import SURFACES, permission_rules
    from kiln.access import warn_if_exposed
    from kiln.access.ratelimit import RateLimiter
    from kiln.access.service import AccessControl

    if getattr(app.state, "assembled", False):
        return
    settings = settings or get_settings()
    app.state.access = AccessControl(settings)  # raises InsecureConfiguration: production refuses a default JWT secret
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
    app.state.assembled = True


class OutputFiles(StaticFiles):
    """StaticFiles that answers 404 (not a 500) while the folder does not exist yet: it is made when the
    first output is written, not when the app is built."""

    async def check_config(self) -> None:
        if self.directory is not None and Path(self.directory).is_dir():
            await super().check_config()


def mount_outputs(app: FastAPI, settings: Settings) -> None:
    """/outputs/... serves KILN_HOME/outputs (seed 001's audio_url); StaticFiles refuses paths that leave it."""
    app.mount("/outputs", OutputFiles(directory=settings.outputs_dir, check_dir=False), name="outputs")
