"""Device sessions (seed 004): a stored model loaded onto one device, its work admitted one at a time
(pause, resume, cancel), unloaded with the memory it returned measured before and after.

Each session is an ``InstancePool`` of Kiln's serving autoscaler (kiln/serving): loaded on first use, unloaded
when idle past KILN_IDLE_TTL_SECONDS and reloaded on the next request. KILN_MODEL_CACHE_BYTES bounds what the
loaded sessions hold together: past it, the least recently used idle one is unloaded. One cache, the pools'.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kiln.device_memory import Allocations, measure, settle
from kiln.device_models import DeviceModel, Loaded, load_on, resolve, warm_imports
from kiln.device_registry import DeviceBusy, InsufficientMemory, list_devices, max_sessions, usable_device
from kiln.devices import MIB
from kiln.errors import Conflict, KilnError, NotFound
from kiln.serving.autoscaler import Autoscaler
from kiln.serving.pool import ModelLoadFailed
from kiln.settings import Settings

ACTIONS = ("pause", "resume", "cancel")


class SessionNotFound(NotFound):
    code = "SESSION_NOT_FOUND"


class SessionUnavailable(Conflict):
    code = "SESSION_UNAVAILABLE"


@dataclass
class Session:
    id: str
    model: DeviceModel
    model_path: str
    device_id: str
    torch_device: str
    strategy: str
    owner: str | None
    cached: bool = False
    created_at: float = field(default_factory=time.time)
    memory_bytes: int = 0  # measured at its last load
    loading_time: float = 0.0
    loads: int = 0
    paused: bool = False
    cancelled: bool = False
    running: int = 0
    queued: int = 0
    completed: int = 0
    failed: int = 0
    last_used: float = field(default_factory=time.time)
    running_since: float | None = None
    mean_seconds: float | None = None
    cond: threading.Condition = field(default_factory=threading.Condition, repr=False)


class DeviceSessions:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.sessions: dict[str, Session] = {}
        self.allocations = Allocations()
        self._lock = threading.RLock()  # reentrant: a refusal made holding it reads the device's sessions
        self._load_lock = threading.Lock()  # one load at a time: each one's measured memory is its own
        self.autoscaler = Autoscaler(self._specs, self._load, idle_ttl_seconds=settings.idle_ttl_seconds,
                                     max_instances=1, window_seconds=settings.stats_window_seconds)
        self.autoscaler.start(settings.autoscaler_interval_seconds)

    # --- the pools' view ---

    def _specs(self) -> dict[str, Session]:
        with self._lock:
            return dict(self.sessions)

    def _load(self, session: Session) -> Loaded:
        with self._load_lock:
            warm_imports(session.model)
            settle(session.torch_device)
            before, started = measure(session.torch_device), time.perf_counter()
            loaded = load_on(session.model, session.torch_device)
            session.loading_time = round(time.perf_counter() - started, 3)
            session.memory_bytes = max(0, measure(session.torch_device) - before)
            session.loads += 1
            return loaded

    def loaded(self, session: Session) -> bool:
        pool = self.autoscaler.pools.get(session.id)
        return bool(pool and pool.instances)

    # --- sessions ---

    def limit(self, device: Any) -> int:
        return max_sessions(device, self.settings.device_max_sessions, self.settings.device_session_memory_mb)

    def counts(self) -> dict[str, int]:
        with self._lock:
            found: dict[str, int] = {}
            for session in self.sessions.values():
                found[session.device_id] = found.get(session.device_id, 0) + 1
            return found

    def load(self, device_id: str, model_path: str, model_type: str | None, strategy: str = "optimal",
             owner: str | None = None, cached: bool = False) -> tuple[Session, list[str]]:
        """A new session of the model on the device, loaded now (strategy "lazy": on first use);
        (session, sessions the budget unloaded to make room)."""
        device = usable_device(device_id)
        model = resolve(self.settings.model_store_dir, model_path, model_type)
        budget = self.settings.model_cache_bytes
        if budget and model.size_bytes > budget:
            raise InsufficientMemory(f"Model '{model.name}' ({model.size_bytes} bytes on disk) is larger than the "
                                     f"model cache (KILN_MODEL_CACHE_BYTES={budget})",
                                     {"modelPath": model_path, "sizeBytes": model.size_bytes, "budgetBytes": budget})
        session = Session(str(uuid.uuid4()), model, model_path, device.id, device.torch_device, strategy, owner, cached)
        with self._lock:
            held = sum(1 for s in self.sessions.values() if s.device_id == device.id)
            if held >= self.limit(device):
                raise DeviceBusy(device.id, "model sessions", f"it holds {held} session(s), its limit; unload one "
                                 "(DELETE /api/processing/sessions/{sessionId})", self._estimate(device.id))
            self.sessions[session.id] = session
        try:
            pool = self.autoscaler.pool(session.id)
            if strategy != "lazy":
                pool.load()
        except ModelLoadFailed as exc:
            self._forget(session.id)
            cause = exc.__cause__
            raise cause if isinstance(cause, KilnError) else exc from None
        except BaseException:
            self._forget(session.id)
            raise
        return session, self.enforce_budget(keep=session.id)

    def get(self, session_id: str, owner: str | None = None, see_all: bool = True) -> Session:
        """The session; SessionNotFound for an unknown id, or one of another owner's unless ``see_all``."""
        with self._lock:
            if session_id not in self.sessions or not (see_all or self.sessions[session_id].owner == owner):
                raise SessionNotFound(f"No session '{session_id}'", {"sessionId": session_id})
            return self.sessions[session_id]

    def on_device(self, device_id: str) -> list[Session]:
        with self._lock:
            return sorted((s for s in self.sessions.values() if s.device_id == device_id), key=lambda s: s.created_at)

    def find(self, model_name: str, device_id: str) -> Session | None:
        return next((s for s in reversed(self.on_device(device_id))
                     if s.model.name == model_name and not s.cancelled), None)

    def all(self) -> list[Session]:
        with self._lock:
            return sorted(self.sessions.values(), key=lambda s: s.created_at)

    def status(self, session: Session) -> str:
        if session.cancelled:
            return "cancelled"
        if session.paused:
            return "paused"
        if session.running:
            return "running"
        return "loaded" if self.loaded(session) else "unloaded"

    def control(self, session_id: str, action: str) -> dict[str, Any]:
        session = self.get(session_id)
        with session.cond:
            if action == "pause":
                session.paused = True
            elif action == "resume":
                if session.cancelled:
                    raise SessionUnavailable(f"Session {session_id} was cancelled: load the model again",
                                             {"sessionId": session_id, "status": "cancelled"})
                session.paused = False
            else:
                session.cancelled = True
            dropped = session.queued if action == "cancel" else 0
            session.cond.notify_all()
        return {"sessionId": session_id, "action": action, "status": self.status(session),
                "runningOperations": session.running, "cancelledOperations": dropped}

    def run(self, session_id: str, work: Callable[[Any], Any]) -> tuple[Any, float]:
        """Run ``work(runner)`` on the session's model when its turn comes; (result, seconds)."""
        session = self.get(session_id)
        deadline = time.monotonic() + self.settings.device_queue_seconds
        with session.cond:
            self._admit(session)
            if session.paused:  # paused: takes no new work (what was queued waits for resume)
                raise SessionUnavailable(f"Session {session.id} is paused: resume it to run work",
                                         {"sessionId": session.id, "status": "paused"})
            session.queued += 1
            try:
                while session.running or session.paused:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise DeviceBusy(session.device_id, "inference", f"session {session.id} is "
                                         f"{'paused' if session.paused else 'running another operation'}",
                                         self._estimate(session.device_id))
                    session.cond.wait(remaining)
                    self._admit(session)
            finally:
                session.queued -= 1
            session.running += 1
            session.running_since = time.time()
        started, ok = time.perf_counter(), False
        try:
            reload = not self.loaded(session)
            with self.autoscaler.lease(session.id) as loaded:
                result = work(loaded.runner)
            ok = True
            if reload:
                self.enforce_budget(keep=session.id)
            return result, time.perf_counter() - started
        finally:
            seconds = time.perf_counter() - started
            with session.cond:
                session.running -= 1
                session.running_since = None
                session.last_used = time.time()
                session.completed += ok
                session.failed += not ok
                session.mean_seconds = seconds if session.mean_seconds is None else 0.8 * session.mean_seconds + 0.2 * seconds
                session.cond.notify_all()

    @staticmethod
    def _admit(session: Session) -> None:
        if session.cancelled:
            raise SessionUnavailable(f"Session {session.id} was cancelled: it takes no more work",
                                     {"sessionId": session.id, "status": "cancelled"})

    def _estimate(self, device_id: str) -> str | None:
        """When the device's running work should end, from the mean duration of its sessions' work."""
        ends = [s.running_since + (s.mean_seconds or 0) for s in self.on_device(device_id) if s.running_since]
        if not ends:
            return None
        from datetime import datetime, timezone

        return datetime.fromtimestamp(max(ends), timezone.utc).isoformat().replace("+00:00", "Z")

    # --- unloading, the budget, idle sessions ---

    def unload(self, session_id: str, wait_seconds: float | None = None) -> dict[str, Any]:
        """Cancel queued work, let running work finish, unload, and measure what the device got back."""
        session = self.get(session_id)
        wait = self.settings.device_queue_seconds if wait_seconds is None else wait_seconds
        with session.cond:
            session.cancelled = True
            session.cond.notify_all()
            deadline = time.monotonic() + wait
            while session.running and time.monotonic() < deadline:
                session.cond.wait(deadline - time.monotonic())
            if session.running:
                raise DeviceBusy(session.device_id, "inference", f"session {session_id} is still running",
                                 self._estimate(session.device_id))
        was_loaded = self.loaded(session)
        settle(session.torch_device)
        before = measure(session.torch_device)
        self._forget(session_id)
        settle(session.torch_device)
        after = measure(session.torch_device)
        returned = max(0, before - after)
        taken = session.memory_bytes if was_loaded else 0
        return {"sessionId": session_id, "status": "unloaded", "deviceId": session.device_id,
                "memoryBefore": before, "memoryAfter": after, "memoryReturned": returned,
                "memoryReturnedMB": round(returned / MIB, 1), "memoryTaken": taken,
                "returnedShare": round(returned / taken, 3) if taken else None,
                "measure": "CUDA allocator" if session.torch_device.startswith("cuda") else "process RSS"}

    def _forget(self, session_id: str) -> None:
        with self._lock:
            self.sessions.pop(session_id, None)
        with self.autoscaler._lock:  # the pool goes with the session: nothing keeps its engine alive
            pool = self.autoscaler.pools.pop(session_id, None)
            self.autoscaler.specs.pop(session_id, None)
        if pool is not None:
            pool.unload()
            pool.loader = None

    def held_bytes(self) -> int:
        return sum(s.memory_bytes for s in self.all() if self.loaded(s))

    def enforce_budget(self, keep: str | None = None) -> list[str]:
        """Unload least recently used idle sessions while the loaded ones hold more than the budget."""
        budget = self.settings.model_cache_bytes
        evicted: list[str] = []
        if not budget:
            return evicted
        while self.held_bytes() > budget:
            idle = [s for s in self.all() if self.loaded(s) and s.id != keep and not s.running]
            if not idle:
                break
            victim = min(idle, key=lambda s: s.last_used)
            pool = self.autoscaler.pools.get(victim.id)
            if pool is not None:  # None: unloaded for good meanwhile (DELETE)
                pool.unload()
            evicted.append(victim.id)
        if evicted:
            settle()
        return evicted

    def unload_idle(self, device_ids: set[str]) -> list[str]:
        """Unload (keep the sessions, lazily reloaded) every loaded session with nothing running or queued."""
        unloaded = []
        for session in self.all():
            pool = self.autoscaler.pools.get(session.id)
            if session.device_id in device_ids and pool and pool.instances and not session.running and not session.queued:
                pool.unload()
                unloaded.append(session.id)
        return unloaded

    def describe(self, session: Session) -> dict[str, Any]:
        loaded = self.loaded(session)
        return {"sessionId": session.id, "modelPath": session.model_path, "modelName": session.model.name,
                "modelVersion": session.model.version, "modelType": session.model.model_type,
                "deviceId": session.device_id, "status": self.status(session), "loaded": loaded,
                "memoryUsage": round(session.memory_bytes / MIB, 1) if loaded else 0.0,
                "memoryUsageBytes": session.memory_bytes if loaded else 0, "loadingTime": session.loading_time,
                "loadingStrategy": session.strategy, "cached": session.cached, "loads": session.loads,
                "runningOperations": session.running, "queuedOperations": session.queued,
                "completedOperations": session.completed, "failedOperations": session.failed,
                "createdAt": session.created_at, "lastUsedAt": session.last_used}

    def close(self) -> None:
        self.autoscaler.stop()
        for session in self.all():
            self._forget(session.id)


_shared: dict[Path, DeviceSessions] = {}
_shared_lock = threading.Lock()


def shared_sessions(settings: Settings) -> DeviceSessions:
    """The process's sessions for a workspace: the routes and the batch tasks of this process share them."""
    key = settings.home_dir
    with _shared_lock:
        if key not in _shared:
            _shared[key] = DeviceSessions(settings)
        return _shared[key]


def devices_listing(sessions: DeviceSessions) -> list[dict[str, Any]]:
    counts = sessions.counts()
    return [{"device": d, "sessions": counts.get(d.id, 0), "limit": sessions.limit(d)} for d in list_devices()]
