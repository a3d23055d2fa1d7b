"""Task workers: Huey consumers running Kiln's task runner.

- ``TaskWorkers.start()`` runs them as threads inside another process (``kiln serve`` starts them in
  the gateway: the embedded default, nothing else to start).
- ``TaskWorkers.run()`` is ``kiln worker``: the consumer alone, in the foreground, on any machine that
  reaches the queue and the database; SIGINT/SIGTERM finish the running tasks, then stop.

On start, waiting tasks whose queue message is missing (the queue file or the Redis data was lost) are
queued again, under a new dispatch number, so no recorded task is forgotten.
"""

from __future__ import annotations

import logging
from typing import Any

from kiln.db import Database
from kiln.settings import Settings
from kiln.tasks import queue
from kiln.tasks.records import TaskRecords, as_utc
from kiln.tasks.registry import TaskRegistry, default_registry
from kiln.tasks.runner import Heartbeat, TaskRunner

log = logging.getLogger("kiln.tasks")


def requeue_missing(settings: Settings, records: TaskRecords) -> list[str]:
    """Queue again every waiting task that has no message in the queue; returns their ids."""
    present = queue.queued_ids(settings)
    again = []
    for task in records.waiting():
        if queue.message_id(task.id, task.dispatch) in present:
            continue
        bumped = records.requeue(task)
        if bumped is not None:
            eta = as_utc(bumped.scheduled_at) if bumped.status == "scheduled" else None
            queue.enqueue(settings, bumped.id, bumped.dispatch, bumped.priority, eta)
            again.append(bumped.id)
    if again:
        log.warning("waiting tasks had no queue message: queued again", extra={"task_ids": again})
    return again


class TaskWorkers:
    def __init__(self, settings: Settings, database: Database, threads: int | None = None,
                 registry: TaskRegistry | None = None, client_factory: Any = None):
        from kiln.filestore.store import FileStore

        self.settings = settings
        self.database = database
        self.threads = threads if threads is not None else max(1, settings.task_workers)
        self.runner = TaskRunner(settings, database, registry or default_registry(), FileStore(settings, database),
                                 client_factory=client_factory)
        self.heartbeat = Heartbeat(self.runner, self.threads)
        self.huey = queue.huey_for(settings)
        self.consumer: Any = None

    def _consumer(self, embedded: bool) -> Any:
        from huey.consumer import Consumer

        class EmbeddedConsumer(Consumer):
            def _set_signal_handlers(self) -> None:  # the host process (the gateway) owns its signals
                pass

        cls = EmbeddedConsumer if embedded else Consumer
        # An idle worker looks at the SQLite queue at least every task_poll_seconds (Redis pops block).
        return cls(self.huey, workers=self.threads, worker_type="thread", periodic=False, initial_delay=0.01,
                   backoff=1.5, max_delay=self.settings.task_poll_seconds, scheduler_interval=1,
                   check_worker_health=True, health_check_interval=5)

    def _prepare(self) -> None:
        self.database.migrate()
        queue.set_executor(self.settings, self.runner)
        self.heartbeat.start()
        requeue_missing(self.settings, self.runner.records)
        log.info("task workers started", extra={"worker_id": self.runner.worker_id, "threads": self.threads,
                                                "queue": self.settings.task_queue})

    def start(self) -> None:
        """Threads in this process; ``stop()`` ends them."""
        self._prepare()
        self.consumer = self._consumer(embedded=True)
        self.consumer.start()

    def stop(self, graceful: bool = True) -> None:
        if self.consumer is not None:
            self.consumer.stop(graceful=graceful)
        self.heartbeat.stop()
        if self.huey.kiln_executor is self.runner:
            queue.set_executor(self.settings, None)

    def run(self) -> None:
        """``kiln worker``: the consumer in the foreground until SIGINT/SIGTERM."""
        self._prepare()
        self.consumer = self._consumer(embedded=False)
        try:
            self.consumer.run()
        finally:
            self.heartbeat.stop()


def start_embedded(settings: Settings, database: Database) -> TaskWorkers | None:
    """The gateway's task workers (KILN_TASK_WORKERS threads; none when it is 0)."""
    if settings.task_workers <= 0:
        return None
    workers = TaskWorkers(settings, database)
    workers.start()
    return workers
