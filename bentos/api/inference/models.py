"""Model management: the model list, the catalog, downloads, the managed pools and the cache."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Query
from pydantic import ValidationError

from bentos.api.http.backends import SettingsDep
from bentos.api.http.timeutil import now
from bentos.api.inference.deps import DeviceDep, DownloadsDep, ModelsDep, WorkerDep
from bentos.api.inference.schemas import DownloadRequest
from bentos.clients import ModelRegistry
from kiln.catalog import CatalogEntry
from kiln.errors import BadRequest, InvalidInput
from kiln.store import ModelStore

router = APIRouter(prefix="/models", tags=["models"])

CATEGORIES = {
    "classification": "tabular classification",
    "text-classification": "text classification",
    "sentence-embedding": "text embeddings",
    "text-to-speech": "audio",
    "speech-to-text": "audio",
    "text-to-image": "image generation",
    "image-to-image": "image generation",
    "text-to-video": "video generation",
    "image-to-video": "video generation",
}


def category(task: str) -> str:
    return CATEGORIES.get(task, task)


@router.get("", summary="Loaded and known models: device, loaded, optimized, parameters, memory")
async def list_models(models: ModelsDep, worker_client: WorkerDep, device: DeviceDep) -> dict:
    models.refresh()
    worker = (await worker_client.status()).get("models", {})
    names = list(models.catalog.names()) + sorted(set(models.models) - set(models.catalog.names()))
    entries = []
    for name in names:
        entry = next((e for e in models.catalog.models if e.name == name), None)
        served = models.models.get(name)
        state = worker.get(name, {})
        memory = state.get("memory_bytes")
        entries.append(
            {
                "name": name,
                "task": entry.task if entry else served.task,
                "source": entry.source if entry else "bentoml",
                "description": entry.description if entry else "",
                "served": served is not None,
                "device": state.get("device", device),
                "loaded": bool(state.get("loaded")),
                "instances": state.get("instances", 0),
                "optimized": bool(state.get("optimized")),
                "parameters": state.get("parameters"),
                "memory_bytes": memory,
                "memory_mb": round(memory / 1e6, 3) if memory else None,
                **({k: v for k, v in state.items() if k not in {"loaded", "instances", "optimized", "parameters", "memory_bytes", "device"}}),
                **(served.info() if served else {}),
            }
        )
    return {
        "success": True,
        "models": entries,
        "available_models": sorted(models.models),
        "loaded_models": sorted(n for n, s in worker.items() if s.get("loaded")),
        "total": len(entries),
        "timestamp": now(),
    }


@router.get("/available", summary="The model catalog, with categories and sizes")
async def available(registry: ModelsDep, settings: SettingsDep) -> dict:
    registry.refresh()
    store = ModelStore(settings.model_store_dir)
    models, categories = [], {}
    for entry in registry.catalog.models:
        stored = store.latest(entry.name)
        models.append(
            {
                "name": entry.name,
                "task": entry.task,
                "category": category(entry.task),
                "source": entry.source,
                "model_id": entry.id,
                "framework": entry.framework,
                "size_mb": entry.size_mb,
                "stored_size_mb": round(stored.size_bytes / 1e6, 3) if stored else None,
                "licence": entry.licence,
                "description": entry.description,
                "tags": entry.tags,
                "downloaded": stored is not None,
                "served": entry.name in registry.models,
            }
        )
        categories.setdefault(category(entry.task), []).append(entry.name)
    return {
        "success": True,
        "models": models,
        "categories": categories,
        "total": len(models),
        "total_size_mb": round(sum(m["size_mb"] or 0 for m in models), 3),
        "timestamp": now(),
    }


def download_entry(registry: ModelRegistry, body: DownloadRequest) -> tuple[CatalogEntry, bool]:
    names = registry.catalog.names()
    if body.name in names:
        entry = registry.catalog.get(body.name)
        for field, given, expected in (("source", body.source, entry.source), ("model_id", body.model_id, entry.id), ("task", body.task, entry.task)):
            if given is not None and given != expected:
                raise BadRequest(
                    f"'{body.name}' is a catalog model with {field} {expected!r}, not {given!r}; omit {field} or pick another name",
                    {"field": field, "catalog_value": expected},
                )
        if entry.source == "train":
            raise BadRequest(f"'{body.name}' is trained, not downloaded: run `kiln pipeline --model {body.name}`")
        return entry, True
    missing = [f for f in ("source", "model_id", "task") if getattr(body, f) is None]
    if missing:
        raise InvalidInput(missing[0], f"required for a model that is not in the catalog (catalog models: {', '.join(names)})")
    if body.source not in ("huggingface", "path", "package"):
        raise InvalidInput("source", f"must be huggingface, path or package, got {body.source!r}")
    try:
        entry = CatalogEntry(name=body.name, source=body.source, id=body.model_id, task=body.task)
    except ValidationError as exc:
        raise InvalidInput("name", "use lower-case letters, digits, '.', '_' or '-' (at most 63 characters)") from exc
    return entry, False


@router.post("/download", summary="Download a model into Kiln's model store (Dagster run when Dagster is up)")
async def download(body: DownloadRequest, models: ModelsDep, downloads: DownloadsDep) -> dict:
    from starlette.concurrency import run_in_threadpool

    entry, in_catalog = download_entry(models, body)
    record, started = await run_in_threadpool(downloads.start, entry, in_catalog, {"include_vocoder": body.include_vocoder})
    return {
        "success": True,
        "download_id": record.id,
        "model_name": entry.name,
        "status": record.state,
        "started": started,
        "via": record.via,
        "message": record.message if started else f"'{entry.name}' is already being downloaded ({record.id})",
        "status_url": f"/models/download/status/{record.id}",
        "dagster_run_id": record.dagster_run_id,
        "timestamp": now(),
    }


@router.get("/download/status/{download_id}", summary="Progress, ETA and message of a download")
async def download_status(download_id: str, downloads: DownloadsDep) -> dict:
    from starlette.concurrency import run_in_threadpool

    return {"success": True, **(await run_in_threadpool(downloads.status, download_id)), "timestamp": now()}


@router.get("/managed", summary="Models the server manages: instance pools, loads, usage, downloads")
async def managed(worker: WorkerDep, downloads: DownloadsDep) -> dict:
    from starlette.concurrency import run_in_threadpool

    stats = await worker.stats()
    return {
        "success": True,
        "models": stats["models"],
        "idle_ttl_seconds": stats["idle_ttl_seconds"],
        "max_instances": stats["max_instances"],
        "downloads": await run_in_threadpool(downloads.list),
        "timestamp": now(),
    }


def folder_usage(root: Path, seen: set[tuple[int, int]]) -> tuple[int, int]:
    """(apparent bytes, bytes not already counted through another hard link) of the files under ``root``."""
    apparent = unique = 0
    if not root.is_dir():
        return 0, 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            stat = os.lstat(os.path.join(dirpath, name))
            apparent += stat.st_size
            key = (stat.st_dev, stat.st_ino)
            if key not in seen:
                seen.add(key)
                unique += stat.st_size
    return apparent, unique


@router.get("/cache/info", summary="Model cache: directories, size per model, hit rate")
async def cache_info(settings: SettingsDep, worker: WorkerDep) -> dict:
    from starlette.concurrency import run_in_threadpool

    store_dir, bento_dir = settings.model_store_dir, settings.bentoml_home / "models"

    def measure() -> dict:
        seen: set[tuple[int, int]] = set()
        per_model = {}
        names = sorted({p.name for p in store_dir.iterdir() if p.is_dir() and not p.name.startswith(".")} if store_dir.is_dir() else set())
        for name in names:
            apparent, unique = folder_usage(store_dir / name, seen)
            versions = ModelStore(store_dir).versions(name)
            per_model[name] = {"versions": len(versions), "size_bytes": apparent, "size_mb": round(apparent / 1e6, 3), "unique_bytes": unique}
        bento_apparent, bento_unique = folder_usage(bento_dir, seen)
        return {"models": per_model, "bentoml_apparent_bytes": bento_apparent, "bentoml_unique_bytes": bento_unique}

    measured = await run_in_threadpool(measure)
    stats = (await worker.stats())["models"]
    hits = sum(s.get("cache_hits", 0) for s in stats.values())
    misses = sum(s.get("cache_misses", 0) for s in stats.values())
    for name, usage in measured["models"].items():
        pool = stats.get(name, {})
        usage["loaded"] = bool(pool.get("loaded"))
        usage["hits"], usage["misses"] = pool.get("cache_hits", 0), pool.get("cache_misses", 0)
    store_unique = sum(m["unique_bytes"] for m in measured["models"].values())
    return {
        "success": True,
        "cache_dir": str(store_dir),
        "bentoml_models_dir": str(bento_dir),
        "models": measured["models"],
        "total_size_mb": round((store_unique + measured["bentoml_unique_bytes"]) / 1e6, 3),
        "bentoml_extra_mb": round(measured["bentoml_unique_bytes"] / 1e6, 3),
        "bentoml_linked_mb": round((measured["bentoml_apparent_bytes"] - measured["bentoml_unique_bytes"]) / 1e6, 3),
        "hits": hits,
        "misses": misses,
        "hit_rate": round(hits / (hits + misses), 4) if hits + misses else None,
        "hit_rate_meaning": "share of prediction calls that found their model already loaded in memory (misses are cold loads)",
        "timestamp": now(),
    }


@router.post("/manage", summary="Load, unload, optimize (int8) or retry (reload from disk) a model")
async def manage(
    models: ModelsDep,
    worker: WorkerDep,
    action: Literal["load", "unload", "optimize", "retry"] = Query(...),
    model_name: str = Query(..., min_length=1, max_length=128),
) -> dict:
    model = models.resolve(model_name)
    result = await worker.control(action, model_name=model.name)
    state = (await worker.stats())["models"].get(model.name, {})
    return {
        "success": True,
        "action": action,
        "model_name": model.name,
        "result": result,
        "loaded": bool(state.get("loaded")),
        "instances": state.get("instances", 0),
        "optimized": bool(state.get("optimized")),
        "timestamp": now(),
    }
