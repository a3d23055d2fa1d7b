"""GPU detection and device recommendations (NVML via nvidia-ml-py, and torch). No GPU: an empty list."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from bentos.api.http.timeutil import now
from kiln import devices

router = APIRouter(prefix="/gpu", tags=["gpu"])


@router.get("/detect", summary="Every GPU found (empty list when there is none)")
async def detect() -> dict:
    gpus = await run_in_threadpool(devices.detect_gpus)
    cuda = await run_in_threadpool(devices.cuda_status, len(gpus))
    return {
        "success": True,
        "gpus": [g.to_dict() for g in gpus],
        "count": len(gpus),
        **cuda.to_dict(),  # cuda_available: torch can use CUDA; nvml_gpu_count: what the driver sees
        "mps_available": devices.mps_available(),
        "timestamp": now(),
    }


@router.get("/best", summary="The GPU best suited for inference, or the CPU recommendation")
async def best() -> dict:
    gpus = await run_in_threadpool(devices.detect_gpus)
    chosen = devices.best_gpu(gpus)
    recommendation = devices.recommend(gpus, devices.cpu_info(), devices.mps_available())
    return {
        "success": True,
        "best_gpu": chosen.to_dict() if chosen else None,
        "device": recommendation.device,
        "reason": recommendation.reason,
        "timestamp": now(),
    }


@router.get("/config", summary="Inference configuration for the detected hardware")
async def config() -> dict:
    report = await run_in_threadpool(devices.device_report)
    return {
        "success": True,
        "device": report["recommendation"]["device"],
        "config": report["recommendation"],
        "gpu_count": report["gpu_count"],
        "cpu": report["cpu"],
        "torch": report["torch"],
        "timestamp": now(),
    }


@router.get("/report", summary="Full device report, as JSON or text",
            responses={200: {"content": {"application/json": {}, "text/plain": {"schema": {"type": "string"}}}}})
async def report(format: Literal["json", "text"] = Query("json")):
    data = await run_in_threadpool(devices.device_report)
    if format == "text":
        return PlainTextResponse(devices.report_text(data))
    return {"success": True, **data, "timestamp": now()}
