"""Task records and their state machine, in Kiln's database (sqlite or Postgres).

    pending/scheduled --claim--> running --finish--> completed | failed | cancelled
    pending/scheduled --cancel--> cancelled           failed/cancelled --retry--> pending/scheduled

Every transition is one conditional UPDATE (``WHERE status IN (...) AND dispatch = ...``), so of two
processes racing for the same task exactly one wins, whatever the database: a task never runs twice,
and a cancelled one never starts. Each transition and progress step is also written to the event log.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import and_, func, or_, select, update

from kiln.db import Database
from kiln.errors import Conflict, NotFound
from kiln.tasks import events
from kiln.tasks.models import FINISHED, PRIORITIES, WAITING, Event, Task, TaskWorker, utcnow

PRIORITY_NAMES = {value: name for name, value in PRIORITIES.items()}


def as_utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def describe(task: Task) -> dict[str, Any]:
    """The task in seed 002's shape (plus progress, retry_count and timings)."""
    return {
        "id": task.id,
        "title": task.title,
        "description": task.description,
        "task_type": task.task_type,
        "parameters": task.parameters,
        "status": task.status,
        "priority": PRIORITY_NAMES.get(task.priority, "normal"),
        "progress": round(task.progress, 2),
        "message": task.message,
        "result": task.result,
        "error": task.error,
        "retry_count": task.retry_count,
        "cancel_requested": task.cancel_requested and task.status == "running",
        "owner_id": task.owner_id,
        "worker_id": task.worker_id,
        "created_at": events.stamp(task.created_at),
        "updated_at": events.stamp(task.updated_at),
        "scheduled_at": events.stamp(task.scheduled_at),
        "started_at": events.stamp(task.started_at),
        "completed_at": events.stamp(task.completed_at),
    }


def status_event(task: Task) -> dict[str, Any]:
    """seed 002's task_status event data."""
    return {"task_id": task.id, "status": task.status, "progress": round(task.progress, 2),
            "message": task.message, "task_type": task.task_type, "error": task.error,
            "timestamp": events.stamp(utcnow())}


class TaskRecords:
    def __init__(self, database: Database):
        self.database = database

    # --- reading ---

    def get(self, task_id: str) -> Task:
        with self.database.session() as session:
            task = session.get(Task, task_id)
        if task is None:
            raise NotFound(f"No task with id '{task_id}'", {"task_id": task_id})
        return task

    def visible(self, task_id: str, owner_id: str | None, see_all: bool) -> Task:
        """The task, if the caller may see it; another owner's task is a 404 (its existence is private)."""
        task = self.get(task_id)
        if not see_all and task.owner_id != owner_id:
            raise NotFound(f"No task with id '{task_id}'", {"task_id": task_id})
        return task

    def list(self, owner_id: str | None, see_all: bool, status: str | None, limit: int, offset: int) -> tuple[list[Task], int]:
        where = []
        if not see_all:
            where.append(Task.owner_id == owner_id if owner_id is not None else Task.owner_id.is_(None))
        if status:
            where.append(Task.status == status)
        with self.database.session() as session:
            total = session.scalar(select(func.count()).select_from(Task).where(*where))
            rows = session.scalars(select(Task).where(*where).order_by(Task.created_at.desc(), Task.id).limit(limit).offset(offset))
            return list(rows), int(total or 0)

    def active(self, owner_id: str | None, task_type: str) -> list[Task]:
        """Every pending, scheduled or running task of one type that ``owner_id`` owns (for per-caller limits)."""
        owner = Task.owner_id == owner_id if owner_id is not None else Task.owner_id.is_(None)
        with self.database.session() as session:
            return list(session.scalars(select(Task).where(owner, Task.task_type == task_type,
                                                           Task.status.in_(("pending", "scheduled", "running")))
                                        .order_by(Task.created_at)))

    # --- creating and changing (before a task starts) ---

    def create(self, task: Task) -> Task:
        with self.database.session() as session:
            session.add(task)
            session.flush()  # fills the defaults the event reads
            session.add(self._event_row(task))
        return task

    def update(self, task_id: str, owner_id: str | None, see_all: bool, **changes: Any) -> tuple[Task, bool]:
        """Change title, description or priority of a task that has not started. Returns (task,
        requeue): a new priority must be queued again (the dispatch number was bumped)."""
        task = self.visible(task_id, owner_id, see_all)
        values = {k: v for k, v in changes.items() if v is not None}
        requeue = "priority" in values and values["priority"] != task.priority
        if requeue:
            values["dispatch"] = Task.dispatch + 1
        if not values:
            return task, False
        with self.database.session() as session:
            done = session.execute(update(Task).where(Task.id == task_id, Task.status.in_(WAITING))
                                   .values(**values, updated_at=utcnow())).rowcount
        if not done:
            raise Conflict(f"Task '{task_id}' has already started ({self.get(task_id).status}): it can no longer be changed",
                           {"task_id": task_id})
        return self.get(task_id), requeue

    # --- running ---

    def claim(self, task_id: str, dispatch: int, worker_id: str) -> Task | None:
        """Start the task for this queue message; None when the message is stale or the task is gone."""
        now = utcnow()
        with self.database.session() as session:  # one transaction: the claim, the task, its event
            # UPDATE ... RETURNING: the claim and the row in one round trip (both backends support it)
            task = session.scalars(
                update(Task).where(Task.id == task_id, Task.status.in_(WAITING), Task.dispatch == dispatch,
                                   Task.cancel_requested.is_(False))
                .values(status="running", started_at=now, updated_at=now, worker_id=worker_id, progress=0.0,
                        message="started", error=None, result=None)
                .returning(Task), execution_options={"synchronize_session": False}
            ).one_or_none()
            if task is None:
                return None
            session.add(self._event_row(task))
        return task

    def progress(self, task: Task, percent: float, message: str | None, metrics: dict[str, Any] | None = None) -> bool:
        """Store progress; False when the task is no longer running (cancelled or reaped meanwhile)."""
        with self.database.session() as session:
            done = session.execute(
                update(Task).where(Task.id == task.id, Task.status == "running")
                .values(progress=percent, message=message, updated_at=utcnow())
            ).rowcount
            if done:
                task.progress, task.message = percent, message
                session.add(self._event_row(task, metrics))
        return bool(done)

    def finish(self, task: Task, status: str, result: dict[str, Any] | None = None, error: str | None = None) -> bool:
        assert status in FINISHED
        now = utcnow()
        values: dict[str, Any] = {"status": status, "completed_at": now, "updated_at": now, "result": result, "error": error}
        if status == "completed":
            values.update(progress=100.0, message="completed")
        elif status == "cancelled":
            values["message"] = "cancelled"
        with self.database.session() as session:
            finished = session.scalars(update(Task).where(Task.id == task.id, Task.status == "running").values(**values)
                                       .returning(Task), execution_options={"synchronize_session": False}).one_or_none()
            if finished is not None:
                session.add(self._event_row(finished))
        return finished is not None

    def cancel_requested(self, task_ids: list[str]) -> set[str]:
        if not task_ids:
            return set()
        with self.database.session() as session:
            return set(session.scalars(select(Task.id).where(Task.id.in_(task_ids), Task.cancel_requested.is_(True))))

    # --- cancel and retry (from the API) ---

    def cancel(self, task_id: str, owner_id: str | None, see_all: bool) -> Task:
        """A waiting task ends cancelled now; a running one is asked to stop (its worker ends it cancelled)."""
        task = self.visible(task_id, owner_id, see_all)
        now = utcnow()
        with self.database.session() as session:
            waiting = session.execute(
                update(Task).where(Task.id == task_id, Task.status.in_(WAITING))
                .values(status="cancelled", cancel_requested=True, completed_at=now, updated_at=now, message="cancelled")
            ).rowcount
            running = 0 if waiting else session.execute(
                update(Task).where(Task.id == task_id, Task.status == "running")
                .values(cancel_requested=True, updated_at=now, message="cancelling")
            ).rowcount
        if not waiting and not running:
            raise Conflict(f"Task '{task_id}' has already finished ({task.status})", {"task_id": task_id, "status": task.status})
        task = self.get(task_id)
        self._event(task)
        return task

    def retry(self, task_id: str, owner_id: str | None, see_all: bool) -> Task:
        task = self.visible(task_id, owner_id, see_all)
        now = utcnow()
        scheduled = task.scheduled_at is not None and as_utc(task.scheduled_at) > now
        with self.database.session() as session:
            done = session.execute(
                update(Task).where(Task.id == task_id, Task.status.in_(("failed", "cancelled")))
                .values(status="scheduled" if scheduled else "pending", retry_count=Task.retry_count + 1,
                        dispatch=Task.dispatch + 1, cancel_requested=False, progress=0.0, message="queued again",
                        result=None, error=None, started_at=None, completed_at=None, worker_id=None, updated_at=now)
            ).rowcount
        if not done:
            raise Conflict(f"Only a failed or cancelled task can be retried; '{task_id}' is {task.status}",
                           {"task_id": task_id, "status": task.status})
        task = self.get(task_id)
        self._event(task)
        return task

    # --- workers and lost work ---

    def register_worker(self, worker_id: str, threads: int, engine: str) -> None:
        with self.database.session() as session:
            session.merge(TaskWorker(id=worker_id, host=socket.gethostname(), pid=os.getpid(), threads=threads,
                                     engine=engine, started_at=utcnow(), heartbeat_at=utcnow(), stopped_at=None))

    def heartbeat(self, worker_id: str) -> None:
        with self.database.session() as session:
            session.execute(update(TaskWorker).where(TaskWorker.id == worker_id).values(heartbeat_at=utcnow()))

    def worker_stopped(self, worker_id: str) -> None:
        with self.database.session() as session:
            session.execute(update(TaskWorker).where(TaskWorker.id == worker_id).values(stopped_at=utcnow()))

    def live_workers(self, lost_after: float) -> list[TaskWorker]:
        cutoff = utcnow() - timedelta(seconds=lost_after)
        with self.database.session() as session:
            return list(session.scalars(select(TaskWorker).where(TaskWorker.stopped_at.is_(None), TaskWorker.heartbeat_at >= cutoff)))

    def fail_lost(self, lost_after: float) -> list[str]:
        """Running tasks whose worker stopped or went silent for ``lost_after`` seconds end failed."""
        cutoff = utcnow() - timedelta(seconds=lost_after)
        with self.database.session() as session:
            alive = select(TaskWorker.id).where(TaskWorker.stopped_at.is_(None), TaskWorker.heartbeat_at >= cutoff)
            lost = list(session.scalars(select(Task.id).where(
                Task.status == "running", or_(Task.worker_id.is_(None), Task.worker_id.not_in(alive)))))
            if lost:
                now = utcnow()
                session.execute(update(Task).where(Task.id.in_(lost), Task.status == "running").values(
                    status="failed", completed_at=now, updated_at=now, message="worker lost",
                    error=f"The worker running this task was lost (no heartbeat for {lost_after:g} s: it was killed or "
                          "its machine went away). Retrying the task (POST /tasks/<id>/retry) runs it again."))
        for task_id in lost:
            self._event(self.get(task_id))
        return lost

    def waiting(self) -> list[Task]:
        with self.database.session() as session:
            return list(session.scalars(select(Task).where(Task.status.in_(WAITING))))

    def requeue(self, task: Task) -> Task | None:
        """Bump the dispatch number of a waiting task (its queue message went missing); None if it moved on."""
        with self.database.session() as session:
            done = session.execute(update(Task).where(Task.id == task.id, Task.status.in_(WAITING),
                                                      Task.dispatch == task.dispatch)
                                   .values(dispatch=Task.dispatch + 1)).rowcount
        return self.get(task.id) if done else None

    # --- metrics ---

    def counts(self) -> dict[str, int]:
        with self.database.session() as session:
            rows = session.execute(select(Task.status, func.count()).group_by(Task.status)).all()
        return {status: int(count) for status, count in rows}

    def recent_durations(self, since: datetime) -> list[float]:
        """Seconds from start to end of the tasks completed since ``since``."""
        with self.database.session() as session:
            rows = session.execute(select(Task.started_at, Task.completed_at).where(
                Task.status == "completed", Task.completed_at >= since, Task.started_at.is_not(None))).all()
        return [(as_utc(end) - as_utc(start)).total_seconds() for start, end in rows]

    def due_waiting(self) -> int:
        """Tasks waiting to run now (pending, or scheduled for a time that has come)."""
        now = utcnow()
        with self.database.session() as session:
            return int(session.scalar(select(func.count()).select_from(Task).where(
                or_(Task.status == "pending", and_(Task.status == "scheduled", Task.scheduled_at <= now)))) or 0)

    def _event(self, task: Task) -> None:
        events.publish(self.database, "task_status", status_event(task), task.id, task.owner_id)

    @staticmethod
    def _event_row(task: Task, metrics: dict[str, Any] | None = None) -> Event:
        """The task_status event of ``task``, to add in the transaction that changed it."""
        data = status_event(task)
        if metrics:
            data["metrics"] = metrics
        return Event(type="task_status", task_id=task.id, owner_id=task.owner_id, data=data)
