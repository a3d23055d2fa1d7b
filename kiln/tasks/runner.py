"""Running tasks in a worker process: claim the dispatch, run the task type's function with a context,
store the outcome; and the worker's heartbeat, which keeps its running tasks alive, passes cancel
requests to them, and ends tasks of workers that went silent as failed ("worker lost")."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any

from kiln.db import Database
from kiln.errors import KilnError
from kiln.settings import Settings
from kiln.tasks import events
from kiln.tasks.context import TaskCancelled, TaskContext
from kiln.tasks.records import TaskRecords
from kiln.tasks.registry import TaskRegistry

log = logging.getLogger("kiln.tasks")


def new_worker_id() -> str:
    import os
    import socket

    return f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class TaskRunner:
    def __init__(self, settings: Settings, database: Database, registry: TaskRegistry, files: Any,
                 worker_id: str | None = None, client_factory: Any = None):
        self.settings = settings
        self.client_factory = client_factory or self.server_client
        self.records = TaskRecords(database)
        self.registry = registry
        self.files = files
        self.worker_id = worker_id or new_worker_id()
        self.running: dict[str, TaskContext] = {}
        self._lock = threading.Lock()

    def server_client(self) -> Any:
        """A client for the Kiln API that the task's model work goes to (KILN_TASK_SERVER_URL)."""
        from kiln.client import KilnClient

        return KilnClient(self.settings.api_url, api_key=worker_key(self.settings), timeout=600)

    def run(self, task_id: str, dispatch: int, scheduled: bool = False) -> None:
        if scheduled and not self._due(task_id, dispatch):
            return
        task = self.records.claim(task_id, dispatch, self.worker_id)
        if task is None:  # an older dispatch, a cancelled task, or one another worker took
            log.info("task message skipped", extra={"task_id": task_id, "dispatch": dispatch})
            return
        context = TaskContext(task, self.records, self.files, self.client_factory, self.settings.task_progress_seconds,
                              self.settings.enable_auth)
        with self._lock:
            self.running[task.id] = context
        started = time.perf_counter()
        log.info("task started", extra={"task_id": task.id, "task_type": task.task_type})
        try:
            task_type = self.registry.get(task.task_type)
            parameters = self.registry.parse(task.task_type, task.parameters)
            result = task_type.run(parameters, context)
        except TaskCancelled:
            self.records.finish(task, "cancelled", error=None)
            log.info("task cancelled", extra={"task_id": task.id})
        except KilnError as exc:
            self.records.finish(task, "failed", error=exc.message)
            log.info("task failed", extra={"task_id": task.id, "error": exc.message})
        except Exception as exc:
            self.records.finish(task, "failed", error=f"{type(exc).__name__}: {exc}")
            log.exception("task raised", extra={"task_id": task.id})
        else:
            if context.cancelled:  # asked to stop after its last progress point: its work is done, keep it
                log.info("task finished before it saw its cancellation", extra={"task_id": task.id})
            self.records.finish(task, "completed", result=result or {})
            log.info("task completed", extra={"task_id": task.id, "seconds": round(time.perf_counter() - started, 3)})
        finally:
            with self._lock:
                self.running.pop(task.id, None)
            context.close()


    def _due(self, task_id: str, dispatch: int) -> bool:
        """Huey's scheduler moves a message up to a second early: wait for the task's time (or, when the
        message came far too early, queue it again for then)."""
        from kiln.tasks import queue
        from kiln.tasks.models import utcnow
        from kiln.tasks.records import as_utc

        try:
            task = self.records.get(task_id)
        except KilnError:
            return False
        when = as_utc(task.scheduled_at)
        early = (when - utcnow()).total_seconds() if when is not None else 0.0
        if early > 2.0:
            queue.enqueue(self.settings, task_id, dispatch, task.priority, when, task.lane)
            return False
        if early > 0:
            time.sleep(early)
        return True


class Heartbeat:
    """One thread per worker process: says the worker is alive, relays cancel requests to running
    tasks, and fails tasks of workers that went silent."""

    def __init__(self, runner: TaskRunner, threads: int):
        self.runner = runner
        self.threads = threads
        self.settings = runner.settings
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.beats = 0

    def start(self) -> None:
        self.runner.records.register_worker(self.runner.worker_id, self.threads, self.settings.task_queue)
        self._thread = threading.Thread(target=self._run, name="kiln-task-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.runner.records.worker_stopped(self.runner.worker_id)

    def _run(self) -> None:
        # Cancel requests are looked for every second; the heartbeat and the reaper run less often.
        every = max(1, round(self.settings.task_heartbeat_seconds))
        while not self._stop.wait(1.0 if self.settings.task_heartbeat_seconds >= 1 else self.settings.task_heartbeat_seconds):
            self.beats += 1
            try:
                self.relay_cancels()
                if self.beats % every == 0:
                    self.runner.records.heartbeat(self.runner.worker_id)
                    reap(self.runner.records, self.settings)
            except Exception:
                log.exception("task heartbeat failed")

    def relay_cancels(self) -> None:
        with self.runner._lock:
            running = dict(self.runner.running)
        for task_id in self.runner.records.cancel_requested(list(running)):
            running[task_id].cancel()


class Reaper:
    """The reaping alone, for a server process that runs no task workers (KILN_TASK_WORKERS=0): tasks of
    workers that died still end failed, even when no worker is left to notice."""

    def __init__(self, settings: Settings, database: Database):
        self.records = TaskRecords(database)
        self.settings = settings
        self._stop = threading.Event()

    def start(self) -> Reaper:
        def loop() -> None:
            while not self._stop.wait(self.settings.task_heartbeat_seconds):
                try:
                    reap(self.records, self.settings)
                except Exception:
                    log.exception("reaping lost tasks failed")

        threading.Thread(target=loop, name="kiln-task-reaper", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()


def reap(records: TaskRecords, settings: Settings) -> list[str]:
    """Fail the running tasks of lost workers, and drop events past their retention."""
    lost = records.fail_lost(settings.task_lost_after_seconds)
    if lost:
        log.warning("tasks of lost workers failed", extra={"task_ids": lost})
    events.prune(records.database, settings.event_retention_hours)
    return lost


def worker_key(settings: Settings) -> str | None:
    """The credential task workers call the API with: KILN_TASK_SERVER_KEY, else the local worker key."""
    if settings.task_server_key is not None:
        return settings.task_server_key.get_secret_value()
    from kiln.access.service import LOCAL_WORKER_KEY_FILE

    path = settings.home_dir / LOCAL_WORKER_KEY_FILE
    return path.read_text().strip() if path.exists() else None
