"""The queue: Huey carries one message per dispatch of a task, ``(task id, dispatch number)``, with the
task's priority and, for a scheduled task, its time. The record in Kiln's database stays the truth
(status, progress, result); the message only says "run this dispatch now".

- ``sqlite`` (default): ``SqliteHuey`` on a file in KILN_HOME, no server; workers of this machine share it.
- ``redis``: ``PriorityRedisHuey`` on a Redis broker that workers on every machine share (blocking pops).

Both order messages by priority, then first in first out (SQLite: ``ORDER BY priority DESC, id``;
Redis: a sorted set scored by priority, members prefixed by their enqueue time).

Lanes: each lane is its own queue with its own worker threads, so strict priority holds within a lane.
- ``default``: all long work (KILN_TASK_WORKERS threads);
- ``batched``: short requests that wait on a shared batcher (text-to-image on a batchable model): they spend
  their time waiting for company, so many of them may be in flight (KILN_TASK_BATCHED_WORKERS threads) without
  taking the default lane's threads from long work, and batches can grow past the default lane's thread count.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import Any

from kiln.settings import Settings

MESSAGE_NAME = "kiln.run_task"
DEFAULT_LANE = "default"
BATCHED_LANE = "batched"
LANES = (DEFAULT_LANE, BATCHED_LANE)
_lock = threading.Lock()
_queues: dict[tuple, Any] = {}


def message_id(task_id: str, dispatch: int) -> str:
    return f"{task_id}:{dispatch}"


def engine_of(settings: Settings) -> str:
    return settings.task_queue


def huey_for(settings: Settings, lane: str = DEFAULT_LANE) -> Any:
    """One Huey instance per lane, queue configuration and process, with Kiln's one message type registered."""
    if lane not in LANES:
        raise ValueError(f"unknown task lane {lane!r}; known: {', '.join(LANES)}")
    key = (lane, settings.task_queue, str(settings.task_queue_file), settings.task_broker)
    name = "kiln" if lane == DEFAULT_LANE else f"kiln-{lane}"  # the default lane keeps its queue from before lanes
    with _lock:
        if key in _queues:
            return _queues[key]
        from huey import PriorityRedisHuey, SqliteHuey

        if settings.task_queue == "redis":
            if not settings.task_broker:
                raise ValueError("KILN_TASK_QUEUE=redis needs KILN_TASK_BROKER_URL (or KILN_REDIS_URL)")
            huey = PriorityRedisHuey(name, url=settings.task_broker, blocking=True, read_timeout=1,
                                     results=False, utc=True)
        else:
            settings.task_queue_file.parent.mkdir(parents=True, exist_ok=True)
            # No fsync on the queue file: Kiln's records are the truth, and a worker that starts queues again
            # any waiting task whose message a crash lost (kiln.tasks.worker.requeue_missing).
            huey = SqliteHuey(name, filename=str(settings.task_queue_file), results=False, utc=True,
                              journal_mode="wal", timeout=30, strict_fifo=True, fsync=False)

        @huey.task(name=MESSAGE_NAME)
        def run_task(task_id: str, dispatch: int, scheduled: bool = False) -> None:
            if huey.kiln_executor is None:
                raise RuntimeError("no task runner in this process: start workers with `kiln worker`")
            huey.kiln_executor.run(task_id, dispatch, scheduled)

        huey.kiln_run_task = run_task
        huey.kiln_executor = None  # the consumer of this process sets its kiln.tasks.runner.TaskRunner
        _queues[key] = huey
        return huey


def set_executor(settings: Settings, executor: Any) -> None:
    for lane in LANES:
        huey_for(settings, lane).kiln_executor = executor


def enqueue(settings: Settings, task_id: str, dispatch: int, priority: int, eta: datetime | None = None,
            lane: str = DEFAULT_LANE) -> None:
    huey = huey_for(settings, lane)
    if eta is not None:
        eta = eta.astimezone(timezone.utc).replace(tzinfo=None)  # huey's utc=True wants naive UTC
    huey.enqueue(huey.kiln_run_task.s(task_id, dispatch, eta is not None, id=message_id(task_id, dispatch),
                                      priority=priority, eta=eta))


def revoke(settings: Settings, task_id: str, dispatch: int, lane: str = DEFAULT_LANE) -> None:
    """Drop a queued message (its claim would fail anyway: this only saves the worker a look)."""
    huey_for(settings, lane).revoke_by_id(message_id(task_id, dispatch), revoke_once=True)


def queued_ids(settings: Settings) -> set[str]:
    """Message ids waiting in the queues (every lane) or in their schedules."""
    ids: set[str] = set()
    for lane in LANES:
        huey = huey_for(settings, lane)
        ids |= {task.id for task in huey.pending()} | {task.id for task in huey.scheduled()}
    return ids


def depth(settings: Settings) -> int:
    return sum(huey_for(settings, lane).pending_count() for lane in LANES)
