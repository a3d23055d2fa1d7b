"""Seed 002's task routes: list, create, read, change, cancel, retry; and the known task types."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from bentos.api.http.identity import CallerDep
from bentos.api.tasks.deps import TasksDep
from bentos.api.tasks.schemas import Message, Status, TaskCreate, TaskList, TaskOut, TaskUpdate
from kiln.tasks.records import describe

router = APIRouter(prefix="/tasks", tags=["tasks"])


@router.get("", response_model=TaskList, summary="The caller's tasks, newest first (an admin sees all)")
async def list_tasks(
    tasks: TasksDep, caller: CallerDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    status: Status | None = None,
) -> dict:
    return await run_in_threadpool(tasks.list, caller.owner_id, caller.see_all, status, limit, offset)


@router.post("", response_model=TaskOut, status_code=201, summary="Create a task (it runs on the task workers)")
async def create_task(body: TaskCreate, tasks: TasksDep, caller: CallerDep) -> dict:
    task = await run_in_threadpool(tasks.create, caller.owner_id, body.title, body.task_type, body.parameters,
                                   body.description, body.priority, body.scheduled_at)
    return describe(task)


@router.get("/types", summary="The task types, with their parameters' JSON schemas")
async def task_types(tasks: TasksDep) -> dict:
    return {"task_types": tasks.registry.describe()}


@router.get("/{task_id}", response_model=TaskOut, summary="A task: status, progress, result or error")
async def get_task(task_id: str, tasks: TasksDep, caller: CallerDep) -> dict:
    return describe(await run_in_threadpool(tasks.get, task_id, caller.owner_id, caller.see_all))


@router.put("/{task_id}", response_model=TaskOut, summary="Change title, description or priority before the task starts")
async def update_task(task_id: str, body: TaskUpdate, tasks: TasksDep, caller: CallerDep) -> dict:
    task = await run_in_threadpool(tasks.update, task_id, caller.owner_id, caller.see_all, body.title,
                                   body.description, body.priority)
    return describe(task)


@router.delete("/{task_id}", response_model=Message,
               summary="Cancel: a waiting task never runs; a running one stops at its next progress point")
async def cancel_task(task_id: str, tasks: TasksDep, caller: CallerDep) -> dict:
    task = await run_in_threadpool(tasks.cancel, task_id, caller.owner_id, caller.see_all)
    message = "Task cancelled successfully" if task.status == "cancelled" else "Task cancellation requested: it stops at its next progress point"
    return {"message": message, "id": task.id, "status": task.status}


@router.post("/{task_id}/retry", response_model=TaskOut, summary="Run a failed or cancelled task again")
async def retry_task(task_id: str, tasks: TasksDep, caller: CallerDep) -> dict:
    return describe(await run_in_threadpool(tasks.retry, task_id, caller.owner_id, caller.see_all))
