"""Health, server information and the model list."""

from __future__ import annotations

import platform
import time

from fastapi import APIRouter

from bentos.api.deps import GatewayDep
from bentos.api.timeutil import now
from kiln import __version__

router = APIRouter(tags=["system"])


@router.get("/health")
async def health(gateway: GatewayDep) -> dict:
    # One body for the shapes of seed 000 (status + models), 002 (dependencies) and 003 (engines, uptime).
    worker = await gateway.worker_status()
    healthy = worker["status"] == "healthy"
    models = worker.get("models", {})
    loaded = sorted(name for name, state in models.items() if state.get("loaded"))
    autoscaler = None
    if healthy:
        stats = await gateway.worker_stats()
        autoscaler = {  # the autoscaler's state (seed 000: "system health check with autoscaler info")
            "enabled": True,
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
        "uptime": round(time.time() - gateway.started, 3),
        "engines": len(models),
        "models_loaded": loaded,
        "models_available": sorted(models),
        "autoscaler": autoscaler,
        "dependencies": {"model_worker": worker["status"]},
    }


@router.get("/info")
async def info(gateway: GatewayDep) -> dict:
    import torch

    return {
        "name": "kiln",
        "version": __version__,
        "description": "Kiln self-hosted MLOps workspace: model serving API",
        "environment": gateway.settings.environment,
        "timestamp": now(),
        "device": gateway.device,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "served_models": {name: model.info() for name, model in gateway.models.items()},
        "catalog_models": gateway.catalog.names(),
        "batching": {
            "enabled": gateway.settings.enable_batching,
            "max_batch_size": gateway.settings.max_batch_size,
            "max_latency_ms": gateway.settings.max_latency_ms,
        },
        "autoscaler": {
            "idle_ttl_seconds": gateway.settings.idle_ttl_seconds,
            "max_instances": gateway.settings.max_instances,
            "preload_models": gateway.settings.preload_models or None,
        },
        "logs_dir": str(gateway.settings.logs_dir),
        "endpoints": gateway.endpoints(),
    }
