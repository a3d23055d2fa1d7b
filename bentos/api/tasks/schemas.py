"""Request and response bodies of seed 002's tasks and files (its shapes, plus progress and timings)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

Priority = Literal["low", "normal", "high", "critical"]
Status = Literal["pending", "scheduled", "running", "completed", "failed", "cancelled"]


class TaskCreate(BaseModel):
    title: str = Field(min_length=1, max_length=200, examples=["Process data"])
    description: str | None = Field(None, max_length=5000)
    priority: Priority = "normal"
    scheduled_at: datetime | None = Field(None, description="Run at this time (ISO 8601); omitted or past: now")
    task_type: str = Field(min_length=1, max_length=64, examples=["data_processing"], description="See GET /tasks/types")
    parameters: dict[str, Any] = Field(default_factory=dict, examples=[{"input_file": "data.csv", "output_format": "json"}])


class TaskUpdate(BaseModel):
    title: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=5000)
    priority: Priority | None = None


class TaskOut(BaseModel):
    id: str
    title: str
    description: str | None
    task_type: str
    parameters: dict[str, Any]
    status: Status
    priority: Priority
    progress: float = Field(description="0-100")
    message: str | None = Field(description="What the task is doing now")
    result: dict[str, Any] | None
    error: str | None
    retry_count: int
    cancel_requested: bool = Field(description="A running task asked to stop (it ends cancelled at its next progress point)")
    owner_id: str | None
    worker_id: str | None = Field(description="The worker that ran (or runs) it")
    created_at: str
    updated_at: str
    scheduled_at: str | None
    started_at: str | None
    completed_at: str | None


class TaskList(BaseModel):
    tasks: list[TaskOut]
    total: int
    limit: int
    offset: int


class Message(BaseModel):
    message: str
    id: str | None = None
    status: str | None = None


class FileOut(BaseModel):
    id: str
    filename: str
    size: int
    content_type: str
    sha256: str
    description: str | None
    upload_date: str
    status: str
    task_id: str | None
    download_url: str
