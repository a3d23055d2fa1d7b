"""What a running task sees: its parameters, a way to report progress (which is also where it learns
that it was cancelled), the files store for its inputs and outputs, and a client for the Kiln API
(model work: predictions, speech, generation run where the models are served)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kiln.errors import KilnError

if TYPE_CHECKING:
    from kiln.filestore.store import FileStore
    from kiln.tasks.models import Task
    from kiln.tasks.records import TaskRecords


class TaskCancelled(KilnError):
    """Raised inside a task at a progress point after DELETE /tasks/{id}: the task ends cancelled."""

    status_code = 409
    code = "CANCELLED"


class TaskContext:
    def __init__(self, task: Task, records: TaskRecords, files: FileStore, client_factory: Callable[[], Any],
                 progress_seconds: float = 0.5, auth_enabled: bool = False):
        from kiln.tasks.registry import Inputs

        self.task = task
        self.inputs = Inputs(files, task.owner_id, not auth_enabled or task.owner_id is None)
        self.records = records
        self.files = files
        self._client_factory = client_factory
        self._client = None
        self.progress_seconds = progress_seconds
        self._last_progress = 0.0
        self._cancelled = threading.Event()
        self._on_cancel: list[Callable[[], None]] = []

    @property
    def task_id(self) -> str:
        return self.task.id

    @property
    def owner_id(self) -> str | None:
        return self.task.owner_id

    @property
    def client(self) -> Any:
        """A kiln.client.KilnClient for the server (made on first use)."""
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    # --- cancellation ---

    def cancel(self) -> None:
        """Called by the worker's heartbeat when the task's record asks for cancellation."""
        if self._cancelled.is_set():
            return
        self._cancelled.set()
        for callback in self._on_cancel:
            try:
                callback()
            except Exception:  # stopping what the task started is best effort; the task still ends cancelled
                pass

    def on_cancel(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` when the task is cancelled (e.g. terminate the Dagster run it follows)."""
        self._on_cancel.append(callback)
        if self._cancelled.is_set():
            callback()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def check(self) -> None:
        if self._cancelled.is_set():
            raise TaskCancelled(f"Task {self.task.id} was cancelled")

    def wait(self, seconds: float) -> None:
        """Sleep, but wake (and stop) at once when cancelled."""
        if self._cancelled.wait(seconds):
            self.check()

    # --- progress ---

    def progress(self, percent: float, message: str | None = None, force: bool = False, **metrics: Any) -> None:
        """Report progress (0-100). Stored and published at most every ``progress_seconds`` (the first and
        last always); raises TaskCancelled when the task was cancelled meanwhile."""
        self.check()
        now = time.monotonic()
        if force or percent >= 100 or now - self._last_progress >= self.progress_seconds:
            self._last_progress = now
            if not self.records.progress(self.task, max(0.0, min(100.0, float(percent))), message, metrics or None):
                self._cancelled.set()  # the record moved on (cancelled, or reaped as lost)
        self.check()

    def close(self) -> None:
        if self._client is not None and hasattr(self._client, "close"):
            self._client.close()
