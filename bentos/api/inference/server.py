"""Server configuration, memory optimization, server metrics and request statistics."""

from __future__ import annotations

import gc
import os
import platform
import time

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from bentos.api.http.backends import SettingsDep, StartedDep
from bentos.api.http.timeutil import now
from bentos.api.inference.deps import DeviceDep, ModelsDep, SpeechDep, WorkerDep
from kiln import __version__

router = APIRouter(tags=["server"])

SECRET_WORDS = ("secret", "password", "token", "key", "credential")


def redacted_settings(settings) -> dict:
    values = {}
    for key, value in settings.model_dump().items():
        if value is not None and any(word in key.lower() for word in SECRET_WORDS):
            value = "***"
        values[key] = str(value) if hasattr(value, "__fspath__") else value
    return values


@router.get("/server/config", tags=["server"], summary="How this server is set up: batching, autoscaler, threads, paths")
async def server_config(s: SettingsDep, device: DeviceDep) -> dict:
    import psutil

    return {
        "success": True,
        "server": {"host": s.host, "port": s.port, "environment": s.environment, "version": __version__, "pid": os.getpid()},
        "batching": {"enabled": s.enable_batching, "max_batch_size": s.max_batch_size, "max_latency_ms": s.max_latency_ms, "max_inputs_per_request": s.max_inputs_per_request},
        "autoscaler": {
            "idle_ttl_seconds": s.idle_ttl_seconds, "interval_seconds": s.autoscaler_interval_seconds,
            "max_instances": s.max_instances, "preload_models": s.preload_models or None,
        },
        "worker": {"threads": s.worker_threads, "torch_threads": s.torch_threads or s.instance_threads or psutil.cpu_count()},
        "stats_window_seconds": s.stats_window_seconds,
        "logging": {"directory": str(s.logs_dir), "level": s.log_level, "max_bytes": s.log_max_bytes, "backups": s.log_backups},
        "paths": {"home": str(s.home_dir), "model_store": str(s.model_store_dir), "bentoml_home": str(s.bentoml_home), "catalog": str(s.catalog_file)},
        "device": device,
        "timestamp": now(),
    }


@router.get("/config", summary="The effective configuration (KILN_* settings; secrets redacted)")
async def config(settings: SettingsDep, device: DeviceDep, models: ModelsDep) -> dict:
    return {
        "success": True,
        "config": redacted_settings(settings),
        "device": device,
        "served_models": sorted(models.models),
        "environment_variables": {k: v for k, v in sorted(os.environ.items()) if k.startswith("KILN_") and not any(w in k.lower() for w in SECRET_WORDS)},
        "timestamp": now(),
    }


def _gateway_free() -> dict:
    from kiln.serving.memory import process_memory_mb, trim_process_memory

    before = process_memory_mb()
    collected = gc.collect()
    trimmed = trim_process_memory()
    return {"gc_objects_collected": collected, "heap_trimmed": trimmed, "gateway_rss_before_mb": before, "gateway_rss_after_mb": process_memory_mb()}


@router.post("/server/optimize", summary="Free memory: unload idle model instances, run gc, trim heaps; reports what was freed")
async def optimize(
    worker_client: WorkerDep,
    idle_seconds: float = Query(0.0, ge=0, description="Unload instances idle at least this long (0: every instance not serving a request)"),
) -> dict:
    started = time.perf_counter()
    worker = await worker_client.control("free_memory", idle_seconds=idle_seconds)
    local = await run_in_threadpool(_gateway_free)
    freed = worker["worker_freed_mb"] + local["gateway_rss_before_mb"] - local["gateway_rss_after_mb"]
    actions = [f"unloaded {n} instance(s) of {m}" for m, n in worker["unloaded_instances"].items()]
    actions.append(f"gc collected {worker['gc_objects_collected'] + local['gc_objects_collected']} objects")
    if worker["heap_trimmed"] or local["heap_trimmed"]:
        actions.append("returned free heap pages to the OS (malloc_trim)")
    if worker["cuda_cache_cleared"]:
        actions.append("emptied the CUDA cache")
    return {
        "success": True,
        "actions": actions,
        "freed_mb": round(freed, 1),
        "worker": worker,
        "gateway": local,
        "processing_time": round(time.perf_counter() - started, 4),
        "timestamp": now(),
    }


@router.get("/metrics/server", summary="CPU and memory (psutil) plus per-model stats")
async def server_metrics(worker_client: WorkerDep, started: StartedDep) -> dict:
    import psutil

    worker = await worker_client.stats()
    cpu = await run_in_threadpool(psutil.cpu_percent, 0.2, True)
    memory = psutil.virtual_memory()
    process = psutil.Process()
    models = {
        name: {
            "loaded": snap.get("loaded", False), "instances": snap.get("instances", 0), "requests": snap.get("requests", 0),
            "errors": snap.get("errors", 0), "queue_depth": snap.get("queue_depth", 0),
            "latency_ms": (snap.get("window") or {}).get("latency_ms"),
            "throughput_rps": (snap.get("window") or {}).get("throughput_rps"),
        }
        for name, snap in worker["models"].items()
    }
    load1, load5, load15 = os.getloadavg()
    return {
        "success": True,
        "cpu": {"percent": round(sum(cpu) / len(cpu), 1), "per_core": cpu, "cores": psutil.cpu_count(), "load_average": [load1, load5, load15]},
        "memory": {
            "total_mb": round(memory.total / 1e6, 1), "available_mb": round(memory.available / 1e6, 1),
            "used_mb": round(memory.used / 1e6, 1), "percent": memory.percent,
        },
        "processes": {
            "gateway": {"pid": process.pid, "rss_mb": round(process.memory_info().rss / 1e6, 1), "threads": process.num_threads()},
            "worker": worker["process"],
        },
        "uptime_seconds": round(time.time() - started, 3),
        "models": models,
        "platform": {"python": platform.python_version(), "system": platform.system(), "machine": platform.machine()},
        "timestamp": now(),
    }


@router.get("/metrics/tts", summary="Speech engines' counters: requests, failures, audio seconds, RTF, cache hits")
async def tts_metrics(speech: SpeechDep) -> dict:
    counters = await speech.call("metrics")
    engines = counters["tts"]
    requests = sum(c["requests"] for c in engines.values())
    return {
        "success": True,
        "result": {
            "tts": engines,
            "stt": counters["stt"],
            "cache": counters["cache"],
            "total_requests": requests,
            "total_failures": sum(c["failures"] for c in engines.values()),
            "total_audio_seconds": round(sum(c["audio_seconds"] for c in engines.values()), 3),
        },
        "timestamp": now(),
    }


@router.get("/stats", summary="Prediction latency p50/p95/p99 and throughput over a sliding window")
async def stats(
    worker: WorkerDep, settings: SettingsDep, started: StartedDep, window_seconds: float = Query(None, gt=0, le=86_400)
) -> dict:
    window = min(window_seconds or settings.stats_window_seconds, settings.stats_window_seconds)
    return {
        "success": True,
        "window_seconds": window,
        "requests": worker.requests.summary(window),
        "totals": worker.requests.totals(),
        "models": {name: w.summary(window) for name, w in sorted(worker.per_model.items())},
        "uptime_seconds": round(time.time() - started, 3),
        "timestamp": now(),
    }
