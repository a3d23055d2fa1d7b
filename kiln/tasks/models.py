"""Tables of the task system: tasks, the workers that run them, and the event log that feeds the
status routes and websockets. Files (the inputs and outputs of tasks) are in kiln/filestore/."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from kiln.db import Base

PRIORITIES = {"low": 0, "normal": 1, "high": 2, "critical": 3}
STATUSES = ("pending", "scheduled", "running", "completed", "failed", "cancelled")
WAITING = ("pending", "scheduled")
FINISHED = ("completed", "failed", "cancelled")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_id() -> str:
    return str(uuid.uuid4())


class Task(Base):
    __tablename__ = "tasks"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    task_type: Mapped[str] = mapped_column(String(64), index=True)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    priority: Mapped[int] = mapped_column(Integer, default=1)  # PRIORITIES' values: higher runs first
    status: Mapped[str] = mapped_column(String(16), index=True, default="pending")
    progress: Mapped[float] = mapped_column(Float, default=0.0)  # 0..100
    message: Mapped[str | None] = mapped_column(Text)  # what the task is doing now
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    retry_count: Mapped[int] = mapped_column(Integer, default=0)
    owner_id: Mapped[str | None] = mapped_column(String(80), index=True)  # a user id, or "key:<id>"; None: auth off
    scheduled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Which queue message may run the task: bumped on retry and on a priority change, so an older message
    # that is still queued finds a newer dispatch and does nothing (no task runs twice).
    dispatch: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # The queue its messages go to (kiln.tasks.queue.LANES), fixed at creation by its task type.
    lane: Mapped[str] = mapped_column(String(16), default="default", server_default="default")
    worker_id: Mapped[str | None] = mapped_column(String(64), index=True)


class TaskWorker(Base):
    """A consumer process: its heartbeat tells whether its running tasks are still being worked on."""

    __tablename__ = "task_workers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    threads: Mapped[int] = mapped_column(Integer)
    engine: Mapped[str] = mapped_column(String(32))  # "sqlite" or "redis": the queue it consumes
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Event(Base):
    """One event for the websockets and the status routes: task transitions and progress, scaling."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    type: Mapped[str] = mapped_column(String(32), index=True)  # task_status | scaling_event | ...
    task_id: Mapped[str | None] = mapped_column(String(36), index=True)
    owner_id: Mapped[str | None] = mapped_column(String(80))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
