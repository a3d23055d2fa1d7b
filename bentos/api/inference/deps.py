"""The narrow dependencies of the inference surface's routes (fakes replace them in route tests)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from bentos.api.http.backends import backend
from bentos.api.speech.deps import SpeechDep  # noqa: F401  (/metrics/tts and the home page report speech engines)
from bentos.clients import ModelRegistry, WorkerClient
from kiln.logs import LogDirectory
from kiln.serving.downloads import DownloadManager

models_backend = backend("models")
worker_backend = backend("worker")
downloads_backend = backend("downloads")
logs_backend = backend("logs")
device_backend = backend("device")

ModelsDep = Annotated[ModelRegistry, Depends(models_backend)]
WorkerDep = Annotated[WorkerClient, Depends(worker_backend)]
DownloadsDep = Annotated[DownloadManager, Depends(downloads_backend)]
LogsDep = Annotated[LogDirectory, Depends(logs_backend)]
DeviceDep = Annotated[str, Depends(device_backend)]
