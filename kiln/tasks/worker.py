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
            queue.enqueue(settings, bumped.id, bumped.dispatch, bumped.priority, eta, bumped.lane)
            again.append(bumped.id)
    if again:
        log.warning("waiting tasks had no queue message: queued again", extra={"task_ids": again})
    return again


class TaskWorkers:
    """One Huey consumer per lane (kiln.tasks.queue.LANES): ``threads`` on the default lane, the batched lane's
    own threads beside them; one runner and one heartbeat for both."""

    def __init__(self, settings: Settings, database: Database, threads: int | None = None,
                 registry: TaskRegistry | None = None, client_factory: Any = None, batched_threads: int | None = None):
        from kiln.filestore.store import FileStore

        self.settings = settings
        self.database = database
        self.threads = threads if threads is not None else max(1, settings.task_workers)
        self.batched_threads = batched_threads if batched_threads is not None else settings.task_batched_workers
        self.runner = TaskRunner(settings, database, registry or default_registry(), FileStore(settings, database),
                                 client_factory=client_factory)
        self.heartbeat = Heartbeat(self.runner, self.threads + self.batched_threads)
        self.huey = queue.huey_for(settings)
        self.consumers: list[Any] = []

    def _consumer(self, lane: str, embedded: bool) -> Any:
        from huey.consumer import Consumer

        class EmbeddedConsumer(Consumer):
            def _set_signal_handlers(self) -> None:  # the host process (the gateway, or the default lane) owns signals
                pass

        cls = EmbeddedConsumer if embedded else Consumer
        threads = self.threads if lane == queue.DEFAULT_LANE else self.batched_threads
        # An idle worker looks at the SQLite queue at least every task_poll_seconds (Redis pops block); the
        # batched lane's many threads look less often, so that idle they cost next to nothing.
        poll = self.settings.task_poll_seconds if lane == queue.DEFAULT_LANE else max(0.25, self.settings.task_poll_seconds)
        return cls(queue.huey_for(self.settings, lane), workers=threads, worker_type="thread", periodic=False,
                   initial_delay=0.01, backoff=1.5, max_delay=poll, scheduler_interval=1,
                   check_worker_health=True, health_check_interval=5)

    def _prepare(self) -> None:
        self.database.migrate()
        queue.set_executor(self.settings, self.runner)
        self.heartbeat.start()
        requeue_missing(self.settings, self.runner.records)
        log.info("task workers started", extra={"worker_id": self.runner.worker_id, "threads": self.threads,
                                                "batched_threads": self.batched_threads,
                                                "queue": self.settings.task_queue})

    def start(self) -> None:
        """Threads in this process; ``stop()`` ends them."""
        self._prepare()
        self.consumers = [self._consumer(lane, embedded=True) for lane in queue.LANES]
        for consumer in self.consumers:
            consumer.start()

    def stop(self, graceful: bool = True) -> None:
        for consumer in self.consumers:
            consumer.stop(graceful=graceful)
        self.heartbeat.stop()
        if self.huey.kiln_executor is self.runner:
            queue.set_executor(self.settings, None)

    def run(self) -> None:
        """``kiln worker``: the default lane's consumer in the foreground until SIGINT/SIGTERM (its signal
        handlers), the other lanes' beside it; all finish their running tasks before the process ends."""
        self._prepare()
        others = [self._consumer(lane, embedded=True) for lane in queue.LANES if lane != queue.DEFAULT_LANE]
        foreground = self._consumer(queue.DEFAULT_LANE, embedded=False)
        self.consumers = [foreground, *others]
        for consumer in others:
            consumer.start()
        try:
            foreground.run()
        finally:
            for consumer in others:
                consumer.stop(graceful=True)
            self.heartbeat.stop()


def start_embedded(settings: Settings, database: Database) -> TaskWorkers | None:
    """The gateway's task workers (KILN_TASK_WORKERS threads; none when it is 0)."""
    if settings.task_workers <= 0:
        return None
    workers = TaskWorkers(settings, database)
    workers.start()
    return workers
