"""Health, server information and the model list."""

from __future__ import annotations

import platform
import time
from datetime import datetime, timezone

from fastapi import APIRouter

from bentos.api.deps import GatewayDep
from kiln import __version__

router = APIRouter(tags=["system"])


def now() -> str:
    return datetime.now(timezone.utc).isoformat()


@router.get("/health")
async def health(gateway: GatewayDep) -> dict:
    # One body for the shapes of seed 000 (status + models), 002 (dependencies) and 003 (engines, uptime).
    worker = await gateway.worker_status()
    healthy = worker["status"] == "healthy"
    return {
        "status": "healthy" if healthy else "degraded",
        "healthy": healthy,
        "timestamp": now(),
        "version": __version__,
        "uptime": round(time.time() - gateway.started, 3),
        "engines": len(worker.get("models", {})),
        "models_loaded": sorted(worker.get("models", {})),
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
        "endpoints": gateway.endpoints(),
    }


@router.get("/models")
async def models(gateway: GatewayDep) -> dict:
    loaded = (await gateway.worker_status()).get("models", {})
    entries = []
    for entry in gateway.catalog.models:
        served = gateway.models.get(entry.name)
        entries.append(
            {
                "name": entry.name,
                "task": entry.task,
                "source": entry.source,
                "description": entry.description,
                "served": served is not None,
                "loaded": entry.name in loaded,
                **(served.info() if served else {}),
                **loaded.get(entry.name, {"device": gateway.device}),
            }
        )
    return {
        "success": True,
        "models": entries,
        "available_models": sorted(gateway.models),
        "total": len(entries),
        "timestamp": now(),
    }
