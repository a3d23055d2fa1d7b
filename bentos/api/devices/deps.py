"""The devices surface's dependencies: this process's device sessions (shared with its batch tasks), the
task service and files store (batches are tasks), and the rate limiter (inference counts per device)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from bentos.api.http.backends import SettingsDep
from bentos.api.http.identity import CallerDep
from bentos.api.tasks.deps import FilesDep, TasksDep
from kiln.device_sessions import DeviceSessions


async def device_sessions(settings: SettingsDep) -> DeviceSessions:
    from kiln.device_sessions import shared_sessions

    return shared_sessions(settings)


async def rate_limiter(request: Request) -> Any:
    return getattr(request.app.state, "limiter", None)


SessionsDep = Annotated[DeviceSessions, Depends(device_sessions)]
LimiterDep = Annotated[Any, Depends(rate_limiter)]

__all__ = ["CallerDep", "FilesDep", "LimiterDep", "SessionsDep", "SettingsDep", "TasksDep"]
