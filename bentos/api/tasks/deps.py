"""The tasks surface's dependencies: the task service and the files store (fakes or real in tests)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from bentos.api.http.backends import backend
from kiln.filestore.store import FileStore
from kiln.tasks.service import TaskService

tasks_backend = backend("tasks")
files_backend = backend("files")
events_backend = backend("events")

TasksDep = Annotated[TaskService, Depends(tasks_backend)]
FilesDep = Annotated[FileStore, Depends(files_backend)]
