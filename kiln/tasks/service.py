"""The task system as the API uses it: create (validated by the task type's schema), list, read,
change, cancel, retry, and the figures of GET /metrics/tasks. Every surface's long work goes through
``create``; the workers of kiln/tasks/worker.py run it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from kiln.db import Database
from kiln.errors import InvalidInput
from kiln.settings import Settings
from kiln.tasks import queue
from kiln.tasks.models import PRIORITIES, Task, utcnow
from kiln.tasks.records import TaskRecords, as_utc, describe
from kiln.tasks.registry import Inputs, TaskRegistry, default_registry


def priority_value(name: str) -> int:
    if name not in PRIORITIES:
        raise InvalidInput("priority", f"must be one of {', '.join(PRIORITIES)}, got {name!r}")
    return PRIORITIES[name]


class TaskService:
    def __init__(self, settings: Settings, database: Database, registry: TaskRegistry | None = None,
                 services: Any = None):
        self.settings = settings
        self.records = TaskRecords(database)
        self.registry = registry or default_registry()
        self.services = services  # what a task type's check() may consult (e.g. the files store)

    def create(self, owner_id: str | None, title: str, task_type: str, parameters: dict[str, Any] | None = None,
               description: str | None = None, priority: str = "normal", scheduled_at: datetime | None = None) -> Task:
        parsed = self.registry.parse(task_type, parameters)
        kind = self.registry.get(task_type)
        inputs = Inputs(self.services, owner_id, not self.settings.enable_auth or owner_id is None)
        if kind.check is not None:
            kind.check(parsed, inputs)
        level = priority_value(priority)
        when = as_utc(scheduled_at)
        scheduled = when is not None and when > utcnow()
        task = Task(title=title, description=description, task_type=task_type,
                    parameters=parsed.model_dump(mode="json", exclude_none=True), priority=level,
                    status="scheduled" if scheduled else "pending", scheduled_at=when, owner_id=owner_id,
                    progress=0.0, retry_count=0, dispatch=0, cancel_requested=False, lane=kind.lane_for(parsed, inputs))
        self.records.create(task)
        queue.enqueue(self.settings, task.id, task.dispatch, level, when if scheduled else None, task.lane)
        return task

    def list(self, owner_id: str | None, see_all: bool, status: str | None, limit: int, offset: int) -> dict[str, Any]:
        tasks, total = self.records.list(owner_id, see_all, status, limit, offset)
        return {"tasks": [describe(t) for t in tasks], "total": total, "limit": limit, "offset": offset}

    def get(self, task_id: str, owner_id: str | None, see_all: bool) -> Task:
        return self.records.visible(task_id, owner_id, see_all)

    def update(self, task_id: str, owner_id: str | None, see_all: bool, title: str | None = None,
               description: str | None = None, priority: str | None = None) -> Task:
        level = priority_value(priority) if priority is not None else None
        before = self.records.visible(task_id, owner_id, see_all)
        task, requeue = self.records.update(task_id, owner_id, see_all, title=title, description=description, priority=level)
        if requeue:  # the old message is revoked; the claim of a stale dispatch would fail anyway
            queue.revoke(self.settings, task.id, before.dispatch, task.lane)
            eta = as_utc(task.scheduled_at) if task.status == "scheduled" else None
            queue.enqueue(self.settings, task.id, task.dispatch, task.priority, eta, task.lane)
        return task

    def cancel(self, task_id: str, owner_id: str | None, see_all: bool) -> Task:
        task = self.records.cancel(task_id, owner_id, see_all)
        if task.status == "cancelled":
            queue.revoke(self.settings, task.id, task.dispatch, task.lane)
        return task

    def retry(self, task_id: str, owner_id: str | None, see_all: bool) -> Task:
        task = self.records.retry(task_id, owner_id, see_all)
        eta = as_utc(task.scheduled_at) if task.status == "scheduled" else None
        queue.enqueue(self.settings, task.id, task.dispatch, task.priority, eta, task.lane)
        return task

    def metrics(self, window_minutes: float = 10.0) -> dict[str, Any]:
        """seed 002's /metrics/tasks: counts by status, mean processing time and throughput (completed
        per minute) over the last ``window_minutes``, queue depth (tasks due to run) and live workers."""
        counts = self.records.counts()
        since = utcnow() - timedelta(minutes=window_minutes)
        durations = self.records.recent_durations(since)
        workers = self.records.live_workers(self.settings.task_lost_after_seconds)
        return {
            "tasks_total": sum(counts.values()),
            "tasks_pending": counts.get("pending", 0),
            "tasks_scheduled": counts.get("scheduled", 0),
            "tasks_running": counts.get("running", 0),
            "tasks_completed": counts.get("completed", 0),
            "tasks_failed": counts.get("failed", 0),
            "tasks_cancelled": counts.get("cancelled", 0),
            "average_processing_time": round(sum(durations) / len(durations), 3) if durations else 0.0,
            "queue_depth": self.records.due_waiting(),
            "worker_count": len(workers),
            "worker_threads": sum(w.threads for w in workers),
            "throughput": round(len(durations) / window_minutes, 3),
            "throughput_unit": "tasks completed per minute",
            "window_minutes": window_minutes,
            "queue": self.settings.task_queue,
        }
