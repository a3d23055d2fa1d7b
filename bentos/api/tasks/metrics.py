"""Seed 002's metrics: GET /metrics/system (this server: CPU, memory, disk, network, connections,
request and error rates, all measured) and GET /metrics/tasks (the task system's counts and rates)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from bentos.api.http.backends import SettingsDep
from bentos.api.http.timeutil import now
from bentos.api.tasks.deps import TasksDep

router = APIRouter(prefix="/metrics", tags=["metrics"])


_primed = False


def system_figures(settings, traffic) -> dict:
    import psutil

    global _primed
    if not _primed:  # psutil measures CPU between two calls: the first one needs a short look
        psutil.cpu_percent(interval=0.1)
        _primed = True
    network = psutil.net_io_counters()
    disk = psutil.disk_usage(str(settings.home_dir if settings.home_dir.exists() else "/"))
    return {
        "timestamp": now(),
        "cpu_usage": psutil.cpu_percent(interval=None),  # since the previous call
        "memory_usage": psutil.virtual_memory().percent,
        "disk_usage": disk.percent,
        "network_io": {"bytes_sent": network.bytes_sent, "bytes_received": network.bytes_recv},
        "active_connections": traffic.in_flight + traffic.websockets,
        **traffic.rates(),  # request_rate: requests/s; error_rate: share of 5xx answers (0..1)
        "requests_in_flight": traffic.in_flight,
        "websockets": traffic.websockets,
    }


@router.get("/system", summary="CPU, memory, disk and network use; connections; request and error rates (last 60 s)")
async def system(request: Request, settings: SettingsDep) -> dict:
    return await run_in_threadpool(system_figures, settings, request.app.state.traffic)


@router.get("/tasks", summary="Tasks by status, processing time, queue depth, workers, throughput (last 10 min)")
async def tasks_metrics(tasks: TasksDep) -> dict:
    return {"timestamp": now(), **(await run_in_threadpool(tasks.metrics))}
