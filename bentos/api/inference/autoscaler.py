"""The autoscaler: per-model instance pools in the model worker (scale, load, unload) and their counters."""

from __future__ import annotations

from fastapi import APIRouter, Query

from bentos.api.http.backends import SettingsDep
from bentos.api.http.spec_limits import replace_bound
from bentos.api.http.timeutil import now
from bentos.api.inference.deps import ModelsDep, WorkerDep
from kiln.errors import InvalidInput, KilnError

router = APIRouter(prefix="/autoscaler", tags=["autoscaler"])

ModelName = Query(..., min_length=1, max_length=128, description="A served model")


def totals(models: dict) -> dict:
    return {
        "models": len(models),
        "loaded_models": sum(1 for m in models.values() if m.get("loaded")),
        "instances": sum(m.get("instances", 0) for m in models.values()),
        "busy_instances": sum(m.get("busy_instances", 0) for m in models.values()),
        "queue_depth": sum(m.get("queue_depth", 0) for m in models.values()),
        "requests": sum(m.get("requests", 0) for m in models.values()),
        "errors": sum(m.get("errors", 0) for m in models.values()),
        "loads": sum(m.get("loads", 0) for m in models.values()),
        "unloads": sum(m.get("unloads", 0) for m in models.values()),
        "idle_unloads": sum(m.get("idle_unloads", 0) for m in models.values()),
    }


HARD_MAX_INSTANCES = 64  # the schema's cap; KILN_MAX_INSTANCES is checked below and shown in the spec


@router.post("/scale", summary="Hold target_instances instances of a model (0 unloads it)")
async def scale(models: ModelsDep, worker: WorkerDep, settings: SettingsDep, model_name: str = ModelName,
                target_instances: int = Query(..., ge=0, le=HARD_MAX_INSTANCES)) -> dict:
    if target_instances > settings.max_instances:
        raise InvalidInput("target_instances", f"at most {settings.max_instances} (KILN_MAX_INSTANCES), got {target_instances}")
    model = models.resolve(model_name)
    result = await worker.control("scale", model_name=model.name, target_instances=target_instances)
    return {"success": True, "model_name": model.name, "target_instances": target_instances, "result": result, "timestamp": now()}


@router.post("/load", summary="Load a model now (instead of on its first request)")
async def load(models: ModelsDep, worker: WorkerDep, model_name: str = ModelName) -> dict:
    model = models.resolve(model_name)
    result = await worker.control("load", model_name=model.name)
    return {"success": True, "model_name": model.name, "result": result, "timestamp": now()}


@router.delete("/unload", summary="Unload every instance of a model (it reloads on its next request)")
async def unload(models: ModelsDep, worker: WorkerDep, model_name: str = ModelName) -> dict:
    model = models.resolve(model_name)
    result = await worker.control("unload", model_name=model.name)
    return {"success": True, "model_name": model.name, "result": result, "timestamp": now()}


@router.get("/stats", summary="Instance counts, requests, loads, queue depth per model")
async def stats(worker_client: WorkerDep) -> dict:
    worker = await worker_client.stats()
    models = {
        name: {k: v for k, v in snap.items() if k not in {"window", "instance_details"}} for name, snap in worker["models"].items()
    }
    return {
        "success": True,
        "enabled": worker["reaper_running"],  # the thread that scales pools by load and idleness
        "idle_ttl_seconds": worker["idle_ttl_seconds"],
        "scale_to_zero": worker["idle_ttl_seconds"] > 0,
        "max_instances": worker["max_instances"],
        "load_scaling": {  # pools grow while busy and shrink when the load goes
            "max_instances": worker["autoscale_max_instances"],
            "scale_up_at_utilization": worker["scale_up_utilization"],
            "scale_down_after_idle_seconds": worker["scale_down_idle_seconds"],
        },
        "totals": totals(worker["models"]),
        "models": models,
        "timestamp": now(),
    }


@router.get("/health", summary="Is the autoscaler working: worker reachable, reaper running, no failed loads")
async def health(worker_client: WorkerDep) -> dict:
    try:
        worker = await worker_client.stats()
    except KilnError as exc:  # an unreachable worker is a health answer, not a server error
        return {"success": True, "healthy": False, "status": "unhealthy", "issues": [exc.message], "timestamp": now()}
    issues = []
    if worker["idle_ttl_seconds"] > 0 and not worker["reaper_running"]:
        issues.append("the idle reaper thread is not running")
    failing = {n: m["last_error"] for n, m in worker["models"].items() if m.get("last_error")}
    issues += [f"{name} failed to load: {error}" for name, error in failing.items()]
    return {
        "success": True,
        "healthy": not issues,
        "status": "healthy" if not issues else "degraded",
        "issues": issues,
        "reaper_running": worker["reaper_running"],
        "reaper_runs": worker["reaper_runs"],
        "idle_ttl_seconds": worker["idle_ttl_seconds"],
        "totals": totals(worker["models"]),
        "timestamp": now(),
    }


@router.get("/metrics", summary="Latency percentiles, throughput and load times over a time window")
async def metrics(
    worker_client: WorkerDep, settings: SettingsDep, window_seconds: float = Query(60.0, gt=0, le=86_400)
) -> dict:
    window = min(window_seconds, settings.stats_window_seconds)
    worker = await worker_client.stats(window)
    models = {}
    for name, snap in worker["models"].items():
        models[name] = {
            "instances": snap.get("instances", 0),
            "scale_ups": snap.get("scale_ups", 0),
            "scale_downs": snap.get("scale_downs", 0),
            "queue_depth": snap.get("queue_depth", 0),
            "max_queue_depth": snap.get("max_queue_depth", 0),
            "loads": snap.get("loads", 0),
            "mean_load_seconds": snap.get("mean_load_seconds"),
            "last_load_seconds": snap.get("last_load_seconds"),
            "inference": snap.get("window"),
            "requests": worker_client.per_model[name].summary(window) if name in worker_client.per_model else None,
        }
    return {
        "success": True,
        "window_seconds": window,
        "requested_window_seconds": window_seconds,
        "requests": worker_client.requests.summary(window),
        "models": models,
        "totals": totals(worker["models"]),
        "worker_process": worker["process"],
        "timestamp": now(),
    }


def spec_limits(schema: dict, settings, paths: list[str]) -> None:
    replace_bound(schema, [p for p in paths if p == "/autoscaler/scale"], "maximum", HARD_MAX_INSTANCES, settings.max_instances)
