"""Seed 004's batches: a batch (its operations, item count and devices) is stored at creation, and
``execute`` runs it as one ``device_batch`` task. Each item is the operations in order: inference (a generation
model on the item's device, through this process's device sessions) then postprocessing (upscale), the image
of one step feeding the next. Items run in groups of ``maxConcurrency``: a group's inference is one sampled batch.
Every item's status and outputs are written to the batch record as it ends; one item failing fails only it."""

from __future__ import annotations

import json
import os
import random
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from kiln.errors import NotFound
from kiln.tasks.context import TaskContext
from kiln.tasks.registry import TaskType

_locks: dict[str, threading.Lock] = {}


class BatchNotFound(NotFound):
    code = "BATCH_NOT_FOUND"


def batches_dir(home: Path) -> Path:
    return Path(home) / "batches"


def _path(home: Path, batch_id: str) -> Path:
    if not batch_id.startswith("batch-") or "/" in batch_id or ".." in batch_id or len(batch_id) > 64:
        raise BatchNotFound(f"No batch '{batch_id}'", {"batchId": batch_id})
    return batches_dir(home) / f"{batch_id}.json"


def save(home: Path, record: dict[str, Any]) -> None:
    target = _path(home, record["batchId"])
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_suffix(f".{uuid.uuid4().hex[:6]}.tmp")
    temporary.write_text(json.dumps(record))
    os.replace(temporary, target)


def load(home: Path, batch_id: str) -> dict[str, Any]:
    path = _path(home, batch_id)
    if not path.is_file():
        raise BatchNotFound(f"No batch '{batch_id}'", {"batchId": batch_id})
    return json.loads(path.read_text())


def create(home: Path, name: str, operations: list[dict[str, Any]], item_count: int, device_ids: list[str],
           owner: str | None) -> dict[str, Any]:
    record = {"batchId": f"batch-{uuid.uuid4()}", "batchName": name, "operations": operations, "itemCount": item_count,
              "deviceIds": device_ids, "owner": owner, "status": "created", "createdAt": time.time(), "taskId": None,
              "items": [{"index": i, "deviceId": device_ids[i % len(device_ids)], "status": "pending"}
                        for i in range(item_count)]}
    save(home, record)
    return record


def update_item(home: Path, batch_id: str, index: int, **changes: Any) -> None:
    lock = _locks.setdefault(batch_id, threading.Lock())
    with lock:
        record = load(home, batch_id)
        record["items"][index].update(changes)
        save(home, record)


class BatchParameters(BaseModel):
    batch_id: str = Field(..., max_length=64)
    concurrent: bool = True
    max_concurrency: int = Field(2, ge=1, le=16)


def _inference(sessions: Any, device_id: str, parameters: dict[str, Any], seed: int, count: int) -> list[Any]:
    """``count`` images of one sampled batch on the device's session of the named model (loaded if needed)."""
    from kiln.device_inference import GenerationInputs, generate

    model_path = parameters.get("sessionId") and sessions.get(parameters["sessionId"]).model_path
    model_path = model_path or parameters.get("modelPath") or "digits-diffusion"
    from kiln.device_models import parse_model_path

    session = sessions.find(parse_model_path(model_path)[0], device_id)
    if session is None:
        session, _ = sessions.load(device_id, model_path, parameters.get("modelType"))
    request = GenerationInputs(parameters.get("prompt") or "", parameters.get("negativePrompt"), parameters.get("width"),
                               parameters.get("height"), int(parameters.get("steps", 20)),
                               parameters.get("guidanceScale"), seed, count)
    results, _ = sessions.run(session.id, lambda runner: generate(runner, session.model, request))
    return [image for image in results["images"]]


def _postprocess(home: Path, torch_device: str, parameters: dict[str, Any], png_b64: str) -> dict[str, Any]:
    from kiln.device_inference import decode_image, encode_png
    from kiln.upscaling import upscale

    if parameters.get("operation", "upscale") != "upscale":
        raise ValueError(f"postprocessing operation {parameters.get('operation')!r} is not one Kiln does (upscale)")
    result = upscale(decode_image(png_b64, 50_000_000), parameters.get("upscaleModel", "lanczos"),
                     int(parameters.get("upscaleFactor", 2)), torch_device, home)
    out = result.image
    return {"imageData": encode_png(out), "width": out.width, "height": out.height, "upscaler": result.upscaler,
            "method": result.method}


def run_batch(parameters: BatchParameters, context: TaskContext) -> dict[str, Any]:
    import base64
    from concurrent.futures import ThreadPoolExecutor

    from kiln.device_registry import find_device
    from kiln.device_sessions import shared_sessions

    settings = context.files.settings
    home = settings.home_dir
    record = load(home, parameters.batch_id)
    sessions = shared_sessions(settings)
    operations, count = record["operations"], record["itemCount"]
    inference = next((o["parameters"] for o in operations if o["type"] == "inference"), None)
    base_seed = inference.get("seed") if inference and inference.get("seed") is not None else random.randrange(2**31)
    size = parameters.max_concurrency if parameters.concurrent else 1
    groups: list[list[int]] = []
    for device_id in record["deviceIds"]:  # one group: items on one device, sampled together
        mine = [i for i in range(count) if record["items"][i]["deviceId"] == device_id]
        groups += [mine[k:k + size] for k in range(0, len(mine), size)]
    done = [0]
    lock = threading.Lock()

    def finish(index: int, **changes: Any) -> None:
        update_item(home, parameters.batch_id, index, finishedAt=time.time(), **changes)
        with lock:
            done[0] += 1
            context.progress(100 * done[0] / count, f"{done[0]}/{count} items", force=True)

    def run_group(group: list[int]) -> None:
        context.check()
        device_id = record["items"][group[0]]["deviceId"]
        for index in group:
            update_item(home, parameters.batch_id, index, status="running", startedAt=time.time())
        started = time.perf_counter()
        try:
            torch_device = find_device(device_id).torch_device
            images = (_inference(sessions, device_id, inference, base_seed + group[0], len(group)) if inference
                      else [None] * len(group))
        except Exception as exc:  # the whole group's inference failed: each of its items says why
            for index in group:
                finish(index, status="failed", error=f"{type(exc).__name__}: {getattr(exc, 'message', exc)}")
            return
        shared = (time.perf_counter() - started) / len(group)
        for index, image in zip(group, images):
            outputs, current = [], image
            try:
                for operation in operations:
                    if operation["type"] == "inference":
                        outputs.append({"operation": "inference", "width": image["width"], "height": image["height"],
                                        "seed": image["seed"], "seconds": round(shared, 4)})
                        continue
                    if current is None:
                        raise ValueError("postprocessing needs an image: put an inference operation before it")
                    current = _postprocess(settings.model_store_dir.parent, torch_device, operation["parameters"], current["imageData"])
                    outputs.append({"operation": "postprocessing", "width": current["width"],
                                    "height": current["height"], "upscaler": current["upscaler"],
                                    "method": current["method"]})
                stored = context.files.save_bytes(base64.b64decode(current["imageData"]),
                                                  f"{record['batchName'][:60]}-{index + 1:04d}.png", "image/png",
                                                  context.owner_id, f"batch {parameters.batch_id} item {index}",
                                                  context.task_id) if current else None
                finish(index, status="completed", outputs=outputs,
                       result={"fileId": stored.id, "downloadUrl": f"/files/{stored.id}/download",
                               "width": current["width"], "height": current["height"]} if stored else None)
            except Exception as exc:  # this item failed; the others go on
                finish(index, status="failed", outputs=outputs, error=f"{type(exc).__name__}: {getattr(exc, 'message', exc)}")

    with ThreadPoolExecutor(max(1, min(len(groups), parameters.max_concurrency if parameters.concurrent else 1))) as pool:
        list(pool.map(run_group, groups))
    final = load(home, parameters.batch_id)
    states = [item["status"] for item in final["items"]]
    return {"batchId": parameters.batch_id, "completed": states.count("completed"), "failed": states.count("failed"),
            "items": count}


TYPES = [TaskType("device_batch", "Run a seed 004 batch: each item's inference then postprocessing, per item results",
                  BatchParameters, run_batch)]
