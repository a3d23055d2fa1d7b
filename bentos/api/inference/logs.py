"""Log files under KILN_HOME/logs: list, read (text/plain with X-Total-Lines), clear."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from bentos.api.http.backends import SettingsDep
from bentos.api.http.timeutil import now
from bentos.api.inference.deps import LogsDep

router = APIRouter(prefix="/logs", tags=["logs"])
access = logging.getLogger("kiln.access")


@router.get("", summary="Log files, with sizes, and the logging setup")
async def list_logs(s: SettingsDep, logs: LogsDep) -> dict:
    files = logs.list()
    return {
        "success": True,
        "log_directory": str(s.logs_dir),
        "level": s.log_level,
        "format": "JSON lines (kiln-*.log); api/dagster/mlflow.log are the servers' console output under `kiln up`",
        "rotation": {"max_bytes": s.log_max_bytes, "backups": s.log_backups},
        "files": files,
        "total_size_mb": round(sum(f["size_bytes"] for f in files) / 1e6, 3),
        "timestamp": now(),
    }


@router.get("/{log_file}", response_class=PlainTextResponse, summary="The last (or first) lines of a log file")
async def read_log(
    log_file: str,
    logs: LogsDep,
    lines: int | None = Query(100, ge=1, le=100_000),
    from_end: bool = Query(True),
) -> PlainTextResponse:
    text, total = await run_in_threadpool(logs.read, log_file, lines, from_end)
    return PlainTextResponse(text, headers={"X-Total-Lines": str(total), "X-Returned-Lines": str(text.count("\n"))})


@router.delete("/{log_file}", summary="Empty a log file")
async def clear_log(log_file: str, logs: LogsDep) -> dict:
    freed = await run_in_threadpool(logs.clear, log_file)
    access.info("log file cleared", extra={"log_file": log_file, "freed_bytes": freed})
    return {"success": True, "log_file": log_file, "cleared": True, "freed_bytes": freed, "timestamp": now()}
