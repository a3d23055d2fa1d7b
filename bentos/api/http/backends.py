"""What the routes depend on, installed on the API app by whoever runs it: the gateway service in
production, a test with fakes for one surface. Each surface's ``deps.py`` turns the parts it needs
into narrow ``Annotated`` dependencies; a route never sees the whole gateway.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request

from kiln.errors import KilnError
from kiln.settings import Settings


class NotStarted(KilnError):
    status_code = 503
    code = "SERVICE_UNAVAILABLE"


@dataclass
class Backends:
    settings: Settings
    models: Any = None  # bentos.clients.ModelRegistry
    worker: Any = None  # bentos.clients.WorkerClient
    speech: Any = None  # bentos.clients.SpeechClient
    downloads: Any = None  # kiln.serving.downloads.DownloadManager
    logs: Any = None  # kiln.logs.LogDirectory
    tasks: Any = None  # kiln.tasks.service.TaskService
    files: Any = None  # kiln.filestore.store.FileStore
    events: Any = None  # bentos.api.tasks.events.EventStream
    scaling: Any = None  # kiln.scaling.service.ScalingService
    faces: Any = None  # kiln.vision.records.FaceRegistry
    device: str = "cpu"
    started: float = field(default_factory=time.time)


def install_backends(app: FastAPI, backends: Backends) -> None:
    app.state.backends = backends


def backend(name: str, required: bool = True) -> Callable[[Request], Any]:
    """A dependency that answers the installed backend ``name`` (503 while the server is starting, or
    None when it is not ``required``)."""

    async def dependency(request: Request) -> Any:  # async: a plain def would cost a thread-pool hop
        backends = getattr(request.app.state, "backends", None)
        value = getattr(backends, name, None)
        if value is None and required:
            raise NotStarted(f"The server is still starting: its {name} is not ready yet", {"backend": name})
        return value

    dependency.__name__ = f"{name}_backend"
    return dependency


# Shared by every surface.
settings_backend = backend("settings")
started_backend = backend("started")
SettingsDep = Annotated[Settings, Depends(settings_backend)]
StartedDep = Annotated[float, Depends(started_backend)]
