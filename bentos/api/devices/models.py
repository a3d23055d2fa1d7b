"""Seed 004's model and session routes: load a stored model onto a device (a session), pre-load models into
the byte-budgeted cache (KILN_MODEL_CACHE_BYTES; the sessions' pools are the cache), list sessions, pause,
resume or cancel one, and unload it with the memory it returned, measured."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from bentos.api.devices.deps import CallerDep, SessionsDep, SettingsDep
from bentos.api.devices.route import DevicesRoute, Envelope, ok
from bentos.api.devices.schemas import (
    CacheOut,
    CacheRequest,
    CacheStatusOut,
    ControlOut,
    ControlRequest,
    LoadRequest,
    SessionOut,
    UnloadOut,
)
from kiln.device_models import InvalidParameters
from kiln.device_sessions import DeviceSessions

models = APIRouter(prefix="/api/model", tags=["devices (seed 004)"], route_class=DevicesRoute)
sessions_router = APIRouter(prefix="/api/processing/sessions", tags=["devices (seed 004)"], route_class=DevicesRoute)
LOAD_ERRORS = {400: {"description": "INVALID_PARAMETERS: a modelPath that is a path, or the wrong modelType"},
               404: {"description": "DEVICE_NOT_FOUND, or MODEL_NOT_FOUND listing the stored models"},
               409: {"description": "DEVICE_BUSY: the device holds its most sessions"}}
SESSION_404 = {404: {"description": "SESSION_NOT_FOUND"}}


def _load(sessions: DeviceSessions, device_id: str, body: LoadRequest, owner: str | None) -> dict[str, Any]:
    if body.device_id and body.device_id != device_id:
        raise InvalidParameters("deviceId", body.device_id, f"the path's device ({device_id})",
                                f"Invalid deviceId: the body names {body.device_id}, the path {device_id}")
    session, evicted = sessions.load(device_id, body.model_path, body.model_type, body.loading_strategy, owner)
    return {**sessions.describe(session), "evictedSessions": evicted}


@models.post("/load/{device_id}", response_model=Envelope[SessionOut], responses=LOAD_ERRORS,
             summary="Load a stored model onto a device: a session, with its measured memory and loading time")
async def load_model(device_id: str, body: LoadRequest, sessions: SessionsDep, caller: CallerDep) -> dict:
    return ok(await run_in_threadpool(_load, sessions, device_id, body, caller.owner_id))


def _cache(sessions: DeviceSessions, body: CacheRequest, budget: int | None, owner: str | None,
           see_all: bool) -> dict[str, Any]:
    from kiln.device_registry import device_id_for, resolve_setting

    device_id = body.device_id or device_id_for(resolve_setting(sessions.settings.device)[0])  # KILN_DEVICE
    cached, evicted = [], []
    for path in body.model_paths:
        from kiln.device_models import parse_model_path

        name, _ = parse_model_path(path)
        session = sessions.find(name, device_id)
        if session is not None and session.owner != owner and not see_all:
            session = None  # another caller's session: this caller gets its own
        hit = session is not None and sessions.loaded(session)
        if session is None:
            session, unloaded = sessions.load(device_id, path, None, "optimal", owner, cached=True)
            evicted += unloaded
        elif not hit:  # in the cache's table but unloaded (idle or evicted): load it again
            sessions.autoscaler.pool(session.id).load()
            evicted += sessions.enforce_budget(keep=session.id)
        components = session.model.components
        wanted = body.components or components
        cached.append({**sessions.describe(session), "hit": hit, "components": [c for c in wanted if c in components],
                       "missingComponents": [c for c in wanted if c not in components],
                       "availableComponents": components})
    return {"cached": cached, "evictedSessions": evicted, **_usage(sessions, budget)}


def _usage(sessions: DeviceSessions, budget: int | None) -> dict[str, Any]:
    held = sessions.held_bytes()
    return {"cacheBytes": held, "budgetBytes": budget, "freeBytes": None if budget is None else max(0, budget - held)}


@models.post("/cache", response_model=Envelope[CacheOut], responses=LOAD_ERRORS,
             summary="Pre-load models (whole models: a diffusers pipeline's components go together) into the cache")
async def cache_models(body: CacheRequest, sessions: SessionsDep, settings: SettingsDep, caller: CallerDep) -> dict:
    return ok(await run_in_threadpool(_cache, sessions, body, settings.model_cache_bytes, caller.owner_id,
                                      caller.see_all))


@models.get("/cache", response_model=Envelope[CacheStatusOut], summary="What the cache holds and its budget")
async def cache_status(sessions: SessionsDep, settings: SettingsDep, caller: CallerDep) -> dict:
    def read() -> dict[str, Any]:
        return {"sessions": [sessions.describe(s) for s in mine(sessions, caller)], **_usage(sessions, settings.model_cache_bytes)}

    return ok(await run_in_threadpool(read))


def mine(sessions: DeviceSessions, caller: Any) -> list[Any]:
    return [s for s in sessions.all() if caller.see_all or s.owner == caller.owner_id]


@sessions_router.get("", response_model=Envelope[list[SessionOut]],
                     summary="The caller's sessions (every session for admins, and with auth off)")
async def list_sessions(sessions: SessionsDep, caller: CallerDep) -> dict:
    return ok(await run_in_threadpool(lambda: [sessions.describe(s) for s in mine(sessions, caller)]))


@sessions_router.get("/{session_id}", response_model=Envelope[SessionOut], responses=SESSION_404,
                     summary="One session")
async def get_session(session_id: str, sessions: SessionsDep, caller: CallerDep) -> dict:
    return ok(await run_in_threadpool(lambda: sessions.describe(sessions.get(session_id, caller.owner_id, caller.see_all))))


@sessions_router.post("/{session_id}/control", response_model=Envelope[ControlOut], responses=SESSION_404,
                      summary="pause (takes no new work; running work finishes), resume, cancel (queued work stops)")
async def control_session(session_id: str, body: ControlRequest, sessions: SessionsDep, caller: CallerDep) -> dict:
    sessions.get(session_id, caller.owner_id, caller.see_all)
    return ok(await run_in_threadpool(sessions.control, session_id, body.action))


@sessions_router.delete("/{session_id}", response_model=Envelope[UnloadOut], responses=SESSION_404,
                        summary="Unload: the memory returned, measured before and after (gc and malloc_trim first)")
async def unload_session(session_id: str, sessions: SessionsDep, caller: CallerDep) -> dict:
    sessions.get(session_id, caller.owner_id, caller.see_all)
    return ok(await run_in_threadpool(sessions.unload, session_id))
