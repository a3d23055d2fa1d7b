"""Seed 002's tasks, files, system and task metrics, and the events websocket, at ``/``. The task system
itself is kiln/tasks/ (records, Huey workers, task types); the files store is kiln/filestore/."""

from bentos.api.http import formats
from bentos.api.http.surface import Surface
from bentos.api.tasks import events, files, metrics, tasks
from bentos.api.tasks.permissions import RULES

SURFACE = Surface(
    name="tasks",
    routers=(tasks.router, files.router, metrics.router, events.router),
    error_formats={"/tasks": formats.autoserve, "/files": formats.autoserve, "/metrics/system": formats.autoserve,
                   "/metrics/tasks": formats.autoserve, "/ws": formats.autoserve},
    rules=RULES,
)
