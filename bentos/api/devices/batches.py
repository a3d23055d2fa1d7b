"""Seed 004's batches: create stores the batch (its operations are checked now: a bad one is a 400 before
anything runs), execute runs it as a ``device_batch`` task of the task system (at most 5 running per caller),
and the status route answers every item's status, outputs and error."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from bentos.api.devices.deps import CallerDep, SettingsDep, TasksDep
from bentos.api.devices.route import DevicesRoute, Envelope, ok
from bentos.api.devices.schemas import BatchCreate, BatchExecute, BatchOut
from kiln.device_models import InvalidParameters
from kiln.errors import Conflict, KilnError

router = APIRouter(prefix="/api/processing/batches", tags=["devices (seed 004)"], route_class=DevicesRoute)
ACTIVE = ("pending", "scheduled", "running")


class TooManyBatches(KilnError):
    status_code = 429
    code = "RATE_LIMIT_EXCEEDED"


def _check(body: BatchCreate, settings: Any) -> None:
    from kiln.device_registry import find_device

    if body.item_count > settings.device_max_batch_items:
        raise InvalidParameters("itemCount", body.item_count, f"at most {settings.device_max_batch_items}",
                                f"Invalid itemCount: at most {settings.device_max_batch_items} (KILN_DEVICE_MAX_BATCH_ITEMS)")
    for device_id in body.device_ids:
        find_device(device_id)
    kinds = [o.type for o in body.operations]
    if kinds.count("inference") > 1 or (kinds[0] != "inference" and "inference" in kinds):
        raise InvalidParameters("operations", kinds, "one inference, first",
                                "Invalid operations: one inference operation, before the postprocessing ones")
    if kinds[0] != "inference":
        raise InvalidParameters("operations", kinds, "starts with inference",
                                "Invalid operations: a batch makes its images with an inference operation first")
    for number, operation in enumerate(body.operations):
        if operation.type == "postprocessing":
            factor = operation.parameters.get("upscaleFactor", 2)
            if operation.parameters.get("operation", "upscale") != "upscale" or factor not in (2, 3, 4):
                raise InvalidParameters(f"operations[{number}].parameters", operation.parameters,
                                        "operation upscale, upscaleFactor 2..4", "Invalid postprocessing: Kiln "
                                        "upscales (operation 'upscale') by an upscaleFactor of 2 to 4")


def _create(body: BatchCreate, settings: Any, owner: str | None) -> dict[str, Any]:
    from kiln.device_inference import GenerationInputs, check_generation
    from kiln.device_models import resolve
    from kiln.tasks.types import devices

    _check(body, settings)
    parameters = body.operations[0].parameters
    model = resolve(settings.model_store_dir, parameters.get("modelPath") or "digits-diffusion", parameters.get("modelType"))
    if model.kind == "generation":  # the prompt and size fit the model: no item would fail for them
        check_generation(model, GenerationInputs(str(parameters.get("prompt") or ""), None, parameters.get("width"),
                                                 parameters.get("height")))
    operations = [o.model_dump() for o in body.operations]
    record = devices.create(settings.home_dir, body.batch_name, operations, body.item_count, body.device_ids, owner)
    return _describe(record, None)


def _describe(record: dict[str, Any], task: Any) -> dict[str, Any]:
    items = record["items"]
    counts = {state: sum(1 for i in items if i["status"] == state) for state in ("pending", "running", "completed", "failed")}
    status = record["status"]
    if task is not None:
        status = "running" if task.status in ACTIVE else task.status
        if task.status == "completed" and counts["failed"]:
            status = "completed_with_errors" if counts["completed"] else "failed"
    return {"batchId": record["batchId"], "batchName": record["batchName"], "status": status,
            "itemCount": record["itemCount"], "deviceIds": record["deviceIds"], "operations": record["operations"],
            "taskId": record.get("taskId"), "progress": round(task.progress, 1) if task is not None else 0.0,
            "counts": counts, "items": items, "createdAt": record["createdAt"],
            "error": task.error if task is not None else None}


@router.post("/create", response_model=Envelope[BatchOut], response_model_exclude_unset=True, status_code=201,
             responses={400: {"description": "INVALID_PARAMETERS"}, 404: {"description": "DEVICE_NOT_FOUND, MODEL_NOT_FOUND"}},
             summary="Store a batch: operations (inference, then postprocessing), itemCount items over deviceIds")
async def create_batch(body: BatchCreate, settings: SettingsDep, caller: CallerDep) -> dict:
    return ok(await run_in_threadpool(_create, body, settings, caller.owner_id))


def _record(settings: Any, batch_id: str, caller: Any) -> dict[str, Any]:
    from kiln.tasks.types import devices

    record = devices.load(settings.home_dir, batch_id)
    if not caller.see_all and record.get("owner") != caller.owner_id:
        raise devices.BatchNotFound(f"No batch '{batch_id}'", {"batchId": batch_id})
    return record


def _execute(settings: Any, tasks: Any, caller: Any, batch_id: str, body: BatchExecute) -> dict[str, Any]:
    from kiln.tasks.types import devices

    record = _record(settings, batch_id, caller)
    if record.get("taskId"):
        raise Conflict(f"Batch {batch_id} was executed already (task {record['taskId']})",
                       {"batchId": batch_id, "taskId": record["taskId"]})
    limit = settings.device_max_concurrent_batches
    # count and create under one lock (across processes and replicas): two executes at once must not both pass
    with tasks.records.database.lock(f"device-batches-{caller.owner_id}"):
        running = tasks.records.active(caller.owner_id, "device_batch")
        if len(running) >= limit:
            raise TooManyBatches(f"Rate limit exceeded: {limit} batches may run at once per caller; {len(running)} are running",
                                 {"limit": limit, "running": [t.id for t in running]})
        task = tasks.create(caller.owner_id, f"batch {record['batchName']}"[:200], "device_batch",
                            {"batch_id": batch_id, "concurrent": body.concurrent, "max_concurrency": body.max_concurrency})
    record.update(taskId=task.id, status="running", concurrent=body.concurrent, maxConcurrency=body.max_concurrency)
    devices.save(settings.home_dir, record)
    return _describe(record, task)


@router.post("/{batch_id}/execute", response_model=Envelope[BatchOut], response_model_exclude_unset=True, status_code=202,
             responses={404: {"description": "BATCH_NOT_FOUND"}, 409: {"description": "Executed already"},
                        429: {"description": "5 batches running for this caller"}},
             summary="Run the batch on the task system; follow it at GET /api/processing/batches/{batchId}")
async def execute_batch(batch_id: str, body: BatchExecute, settings: SettingsDep, tasks: TasksDep,
                        caller: CallerDep) -> dict:
    return ok(await run_in_threadpool(_execute, settings, tasks, caller, batch_id, body))


@router.get("/{batch_id}", response_model=Envelope[BatchOut], response_model_exclude_unset=True,
            responses={404: {"description": "BATCH_NOT_FOUND"}},
            summary="The batch's status, progress, and every item's status, outputs and error")
async def batch_status(batch_id: str, settings: SettingsDep, tasks: TasksDep, caller: CallerDep) -> dict:
    def read() -> dict[str, Any]:
        record = _record(settings, batch_id, caller)
        task = tasks.get(record["taskId"], caller.owner_id, caller.see_all) if record.get("taskId") else None
        return _describe(record, task)

    return ok(await run_in_threadpool(read))
