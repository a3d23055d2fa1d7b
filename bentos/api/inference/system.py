"""Health, server information and the model list."""

from __future__ import annotations

import platform
import time

from fastapi import APIRouter, Request

from bentos.api.http.backends import SettingsDep, StartedDep
from bentos.api.http.timeutil import now
from bentos.api.inference.deps import DeviceDep, ModelsDep, WorkerDep
from kiln import __version__

router = APIRouter(tags=["system"])


@router.get("/health")
async def health(worker_client: WorkerDep, started: StartedDep) -> dict:
    # One body for the shapes of seed 000 (status + models), 002 (dependencies) and 003 (engines, uptime).
    worker = await worker_client.status()
    healthy = worker["status"] == "healthy"
    models = worker.get("models", {})
    loaded = sorted(name for name, state in models.items() if state.get("loaded"))
    autoscaler = None
    if healthy:
        stats = await worker_client.stats()
        autoscaler = {  # the autoscaler's state (seed 000: "system health check with autoscaler info")
            "enabled": stats["reaper_running"],  # the thread that scales pools by load and idleness
            "scale_to_zero": stats["idle_ttl_seconds"] > 0,
            "load_scaling": stats["autoscale_max_instances"] > 1,
            "idle_ttl_seconds": stats["idle_ttl_seconds"],
            "reaper_running": stats["reaper_running"],
            "loaded_models": loaded,
            "instances": {name: snap.get("instances", 0) for name, snap in stats["models"].items()},
            "queue_depth": sum(snap.get("queue_depth", 0) for snap in stats["models"].values()),
        }
    return {
        "status": "healthy" if healthy else "degraded",
        "healthy": healthy,
        "timestamp": now(),
        "version": __version__,
        "uptime": round(time.time() - started, 3),
        "engines": len(models),
        "models_loaded": loaded,
        "models_available": sorted(models),
        "autoscaler": autoscaler,
        "dependencies": {"model_worker": worker["status"]},
    }


@router.get("/info")
async def info(request: Request, models: ModelsDep, settings: SettingsDep, device: DeviceDep) -> dict:
    from importlib.metadata import version

    # torch's version from its metadata: importing torch here stalled the event loop for seconds (a 5 s
    # client timeout on the first /info after start)
    return {
        "name": "kiln",
        "version": __version__,
        "description": "Kiln self-hosted MLOps workspace: model serving API",
        "environment": settings.environment,
        "timestamp": now(),
        "device": device,
        "python": platform.python_version(),
        "torch": version("torch"),
        "served_models": {name: model.info() for name, model in models.models.items()},
        "catalog_models": models.catalog.names(),
        "batching": {
            "enabled": settings.enable_batching,
            "max_batch_size": settings.max_batch_size,
            "max_latency_ms": settings.max_latency_ms,
        },
        "autoscaler": {
            "idle_ttl_seconds": settings.idle_ttl_seconds,
            "max_instances": settings.max_instances,
            "preload_models": settings.preload_models or None,
        },
        "logs_dir": str(settings.logs_dir),
        "endpoints": sorted(request.app.openapi()["paths"]),
    }
