"""Per-model instance pools: lazy load on first use, scale to N instances, idle unload after a TTL.

An ``InstancePool`` holds the loaded instances (engines) of one model. Callers lease an instance for
one forward pass; when every instance is busy they queue, highest priority first. A pool loads its
first instance on the first lease (lazy) and loads more up to its target. Under load it grows by
itself: when its instances were busy for at least ``grow_at_utilization`` of the last second, it adds
one (loaded in the background, up to ``auto_max``); instances beyond the manual floor that sit idle
are dropped again (``shrink_idle``), and all are dropped after the idle TTL (scale to zero).

A plain thread-safe class: the model worker uses it through ``kiln.serving.autoscaler``, and unit
tests drive it directly.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from kiln.errors import BadRequest, KilnError, Timeout
from kiln.serving.stats import LatencyWindow


class PoolTimeout(Timeout):
    """No instance of the model became free within the request's timeout."""


class ModelLoadFailed(KilnError):
    status_code = 503
    code = "SERVICE_UNAVAILABLE"

    def __init__(self, name: str, cause: BaseException):
        reason = cause.message if isinstance(cause, KilnError) else f"{type(cause).__name__}: {cause}"
        super().__init__(
            f"Model '{name}' failed to load: {reason}. Fix it, then POST /models/manage?action=retry&model_name={name}",
            {"model_name": name, "reason": reason},
        )


@dataclass
class Instance:
    id: int
    engine: Any
    loaded_at: float  # wall clock
    load_seconds: float
    last_used: float  # pool clock
    busy: bool = False
    busy_since: float = 0.0  # pool clock
    requests: int = 0
    retire: bool = False  # drop on release (scale-down or re-optimization while busy)


class InstancePool:
    def __init__(
        self,
        name: str,
        loader: Callable[[], Any],
        max_instances: int = 4,
        window_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.name = name
        self.loader = loader
        self.max_instances = max_instances
        self.clock = clock
        self.target = 1  # instances wanted while the model is in use
        self.floor = 1  # set by scale(): growing and shrinking under load stay at or above it
        self.auto_max = 1  # instances the pool may grow to by itself under load (1: it never grows)
        self.grow_at_utilization = 0.75  # share of the last second the instances were busy
        self.can_grow: Callable[[], bool] = lambda: True  # e.g. "there is memory for one more"
        self.instances: list[Instance] = []
        self.loading = 0
        self.post_load: Callable[[Any], Any] | None = None  # e.g. an optimization, re-applied on reload
        # Told of every change of the instance count: {action, from_replicas, to_replicas, trigger, reason}.
        # Called holding the pool's lock: it must only hand the change on (e.g. to a queue).
        self.on_scale: Callable[[dict[str, Any]], None] | None = None
        self.optimization: dict[str, Any] | None = None
        self._cond = threading.Condition()
        self._waiters: list[tuple[int, int]] = []
        self._tickets = itertools.count()
        self._ids = itertools.count(1)
        # counters
        self.loads = 0
        self.load_failures = 0
        self.unloads = 0
        self.idle_unloads = 0
        self.load_seconds: list[float] = []
        self.last_error: str | None = None
        self.max_queue_depth = 0
        self.scale_ups = 0
        self.scale_downs = 0
        self.busy_seconds = 0.0  # summed over instances
        self._utilization_mark = (clock(), 0.0)  # (when, busy_seconds then)
        self.hits = 0  # leases that found the model loaded
        self.misses = 0  # leases that had to load it first (cold start)
        self.last_used_at: float | None = None  # wall clock
        self.latency = LatencyWindow(window_seconds, clock=clock)

    # --- leasing ---

    @contextmanager
    def lease(self, priority: int = 0, timeout: float | None = None, items: int = 1) -> Iterator[Any]:
        """Yield a loaded engine for exclusive use (one forward pass over ``items`` inputs); loads one
        first if the pool is empty."""
        with self.lease_many(1, priority, timeout, items) as engines:
            yield engines[0]

    @contextmanager
    def lease_many(self, limit: int, priority: int = 0, timeout: float | None = None, items: int = 1) -> Iterator[list[Any]]:
        """Yield one or more engines (at most ``limit``) to split a batch over: the first is waited for
        like ``lease``; the others are instances idle right now, so a large batch uses every free
        instance and never waits for a second one. Counts as one request of ``items`` inputs."""
        instances = [self._acquire(priority, timeout)]
        with self._cond:
            while len(instances) < limit and not self._waiters and (extra := self._idle()) is not None:
                extra.busy, extra.busy_since = True, self.clock()
                self.hits += 1
                instances.append(extra)
        started = time.perf_counter()
        ok = False
        try:
            yield [instance.engine for instance in instances]
            ok = True
        finally:
            self.latency.record(time.perf_counter() - started, ok=ok, items=items)
            self._release(instances)

    def _acquire(self, priority: int, timeout: float | None) -> Instance:
        deadline = None if timeout is None else self.clock() + timeout
        ticket = (-priority, next(self._tickets))
        cold = False
        with self._cond:
            heapq.heappush(self._waiters, ticket)
            self.max_queue_depth = max(self.max_queue_depth, len(self._waiters))
            try:
                while True:
                    if self._waiters[0] == ticket:
                        idle = self._idle()
                        if idle is not None:
                            heapq.heappop(self._waiters)
                            idle.busy, idle.busy_since = True, self.clock()
                            if cold:
                                self.misses += 1
                            else:
                                self.hits += 1
                            return idle
                        if len(self.instances) + self.loading < self.target:
                            first = not self.instances and not self.loading
                            cold = cold or not self.instances
                            self._load_locked()
                            if first:
                                self._scaled("scale_up", 0, len(self.instances), "demand", "a request for an unloaded model")
                            continue
                    remaining = None if deadline is None else deadline - self.clock()
                    if remaining is not None and remaining <= 0:
                        raise PoolTimeout(
                            f"No instance of '{self.name}' became free within {timeout} s "
                            f"({len(self._waiters)} requests queued)",
                            {"model_name": self.name, "queue_depth": len(self._waiters)},
                        )
                    self._cond.wait(remaining)
            finally:
                if ticket in self._waiters:
                    self._waiters.remove(ticket)
                    heapq.heapify(self._waiters)
                self._cond.notify_all()

    def _idle(self) -> Instance | None:
        # The most recently used idle instance, so extra instances age out and get reaped.
        idle = [i for i in self.instances if not i.busy and not i.retire]
        return max(idle, key=lambda i: i.last_used) if idle else None

    def _release(self, instances: list[Instance]) -> None:
        with self._cond:
            for instance in instances:
                instance.busy = False
                instance.requests += 1
                instance.last_used = self.clock()
                self.busy_seconds += instance.last_used - instance.busy_since
                if instance.retire or len(self.instances) > self.target:
                    self._remove(instance)
            self.last_used_at = time.time()
            self._grow_if_busy()
            self._cond.notify_all()

    # --- loading and unloading ---

    def _load_locked(self) -> Instance:
        """Load one instance. Called holding the lock; releases it while the loader runs."""
        self.loading += 1
        self._cond.release()
        started = time.perf_counter()
        try:
            engine = self._new_engine()
        except BaseException as exc:
            self._cond.acquire()
            self._load_failed(exc)
            if isinstance(exc, Exception):
                raise ModelLoadFailed(self.name, exc) from exc
            raise
        self._cond.acquire()
        return self._loaded(engine, time.perf_counter() - started)

    def _new_engine(self) -> Any:
        engine = self.loader()
        return engine if self.post_load is None else self.post_load(engine)

    def _loaded(self, engine: Any, seconds: float) -> Instance:
        self.loading -= 1
        instance = Instance(next(self._ids), engine, time.time(), seconds, self.clock())
        self.instances.append(instance)
        self.loads += 1
        self.load_seconds.append(seconds)
        del self.load_seconds[:-100]
        self.last_error = None
        self._cond.notify_all()
        return instance

    def _load_failed(self, exc: BaseException) -> None:
        self.loading -= 1
        self.load_failures += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        self._cond.notify_all()

    # --- growing and shrinking with the load ---

    def _may_grow(self) -> bool:
        return bool(self.instances) and not self.loading and self.target < min(self.auto_max, self.max_instances)

    def _grow_if_busy(self) -> None:
        """Once a second: add an instance if the ones there were busy most of that second. Lock held."""
        now = self.clock()
        since, busy_then = self._utilization_mark
        if now - since < 1.0:
            return
        self._utilization_mark = (now, self.busy_seconds)
        utilization = (self.busy_seconds - busy_then) / ((now - since) * max(1, len(self.instances)))
        if utilization >= self.grow_at_utilization and self._may_grow() and self.can_grow():
            self._grow(utilization)

    def _scaled(self, action: str, before: int, after: int, trigger: str, reason: str) -> None:
        if self.on_scale is not None and before != after:
            metrics = {"queue_depth": len(self._waiters), "busy_instances": sum(i.busy for i in self.instances),
                       "requests": self.hits + self.misses}
            self.on_scale({"service": self.name, "action": action, "from_replicas": before, "to_replicas": after,
                           "trigger": trigger, "reason": reason, "metrics": metrics})

    def _grow(self, utilization: float = 1.0, trigger: str = "load", reason: str | None = None,
              counted: bool = False) -> None:
        """Add one instance, loaded in a background thread while the others keep serving. Lock held.
        ``counted``: the target already holds it (the first instance of a pool scaled to zero)."""
        if not counted:
            self.target += 1
        self.scale_ups += 1
        self.loading += 1
        self._scaled("scale_up", len(self.instances), len(self.instances) + 1, trigger,
                     reason or f"instances busy {utilization:.0%} of the last second")

        def load() -> None:
            started = time.perf_counter()
            try:
                engine = self._new_engine()
            except Exception as exc:  # the pool keeps serving with the instances it has
                with self._cond:
                    if not counted:
                        self.target -= 1
                    self._load_failed(exc)
                return
            with self._cond:
                self._loaded(engine, time.perf_counter() - started)

        threading.Thread(target=load, name=f"kiln-grow-{self.name}", daemon=True).start()

    def grow_to(self, target: int, trigger: str, reason: str) -> int:
        """Add instances up to ``target`` ahead of demand (a predicted rise), within the same limits as load
        growth: the autoscaling cap and memory headroom. A pool the TTL scaled to zero loads its first
        instance now (no cold start when the rise comes). What it adds goes like what load added, once
        idle. Returns how many it started loading."""
        added = 0
        with self._cond:
            if target >= 1 and not self.instances and not self.loading and self.can_grow():
                self.target = max(self.target, 1)
                self._grow(trigger=trigger, reason=reason, counted=True)
                added += 1
            while len(self.instances) + self.loading < target and self._may_grow_ahead() and self.can_grow():
                self._grow(trigger=trigger, reason=reason)
                added += 1
        return added

    def _may_grow_ahead(self) -> bool:
        return bool(self.instances or self.loading) and self.target < min(self.auto_max, self.max_instances)

    def shrink_idle(self, idle_seconds: float) -> int:
        """Drop instances above the floor that have been idle ``idle_seconds``: what load added goes
        when the load does. Returns how many were dropped."""
        now = self.clock()
        dropped = 0
        with self._cond:
            for instance in sorted(self.instances, key=lambda i: i.last_used):
                if len(self.instances) <= self.floor or self.target <= self.floor:
                    break
                if not instance.busy and now - instance.last_used >= idle_seconds:
                    self._remove(instance)
                    self.target -= 1
                    dropped += 1
            self.scale_downs += dropped
            if dropped:
                self._scaled("scale_down", len(self.instances) + dropped, len(self.instances), "idle",
                             f"instances the load added were idle for {idle_seconds:g} s")
        return dropped

    def _remove(self, instance: Instance) -> None:
        self.instances.remove(instance)
        instance.engine = None
        self.unloads += 1

    def scale(self, target: int) -> dict[str, Any]:
        """Hold ``target`` instances now (0 unloads the model); returns what changed."""
        if target < 0:
            raise BadRequest(f"target_instances must be >= 0, got {target}", {"target_instances": target})
        if target > self.max_instances:
            raise BadRequest(
                f"target_instances must be <= {self.max_instances} (KILN_MAX_INSTANCES), got {target}",
                {"target_instances": target, "max_instances": self.max_instances},
            )
        if target == 0:
            return {"loaded": 0, **self.unload()}
        with self._cond:
            before = len(self.instances)
            self.target = self.floor = target
            loaded = 0
            while len(self.instances) + self.loading < target:
                self._load_locked()
                loaded += 1
            removed = retiring = 0
            for instance in sorted(self.instances, key=lambda i: i.last_used)[: max(0, len(self.instances) - target)]:
                if instance.busy:
                    instance.retire, retiring = True, retiring + 1
                else:
                    self._remove(instance)
                    removed += 1
            self._cond.notify_all()
            self._scaled("scale_up" if target > before else "scale_down", before, target, "manual",
                         f"held at {target} instance(s) by POST /autoscaler/scale")
            return {"before": before, "loaded": loaded, "unloaded": removed, "retiring": retiring, "instances": len(self.instances)}

    def load(self) -> dict[str, Any]:
        """Make sure at least one instance is loaded (``target`` if higher)."""
        return self.scale(max(1, self.target))

    def unload(self) -> dict[str, Any]:
        """Drop every instance now; busy ones are dropped when their request finishes."""
        with self._cond:
            before = len(self.instances)
            removed = retiring = 0
            for instance in list(self.instances):
                if instance.busy:
                    instance.retire, retiring = True, retiring + 1
                else:
                    self._remove(instance)
                    removed += 1
            self.target = self.floor = 1
            self._cond.notify_all()
            self._scaled("scale_down", before, 0, "manual", "unloaded")
        return {"before": before, "unloaded": removed, "retiring": retiring, "instances": before - removed}

    def reap_idle(self, ttl_seconds: float) -> int:
        """Unload instances idle for at least ``ttl_seconds`` (all of them: scale to zero)."""
        if ttl_seconds <= 0:
            return 0
        now = self.clock()
        with self._cond:
            stale = [i for i in self.instances if not i.busy and now - i.last_used >= ttl_seconds]
            for instance in stale:
                self._remove(instance)
            self.idle_unloads += len(stale)
            if not self.instances:  # scaled to zero: the next lease starts again from the floor
                self.target = self.floor
            if stale:
                self._scaled("scale_down", len(self.instances) + len(stale), len(self.instances), "idle",
                             f"idle for {ttl_seconds:g} s (KILN_IDLE_TTL_SECONDS)")
            return len(stale)

    def transform(self, change: Callable[[Any], Any], description: dict[str, Any]) -> int:
        """Apply ``change`` to every loaded instance and to every future load (e.g. quantization).

        Idle instances are changed now; busy ones are retired and reloaded on demand. Returns how many
        instances were changed.
        """
        with self._cond:
            previous = self.post_load
            self.post_load = change if previous is None else (lambda engine: change(previous(engine)))
            self.optimization = description
            taken = [i for i in self.instances if not i.busy]
            for instance in self.instances:
                if instance.busy:
                    instance.retire = True
                else:
                    instance.busy = True
        try:
            for instance in taken:
                instance.engine = change(instance.engine)
        finally:
            with self._cond:
                for instance in taken:
                    instance.busy = False
                self._cond.notify_all()
        return len(taken)

    def reset(self) -> dict[str, Any]:
        """Forget optimizations and errors and reload from disk (the ``retry`` action)."""
        with self._cond:
            self.post_load = None
            self.optimization = None
            self.last_error = None
        unloaded = self.unload()
        return {**unloaded, **self.load()}

    # --- reporting ---

    @property
    def queue_depth(self) -> int:
        return len(self._waiters)

    def engine(self) -> Any | None:
        with self._cond:
            return next((i.engine for i in self.instances if i.engine is not None), None)

    def snapshot(self, window_seconds: float | None = None) -> dict[str, Any]:
        now = self.clock()
        with self._cond:
            instances = [
                {
                    "id": i.id, "busy": i.busy, "requests": i.requests, "load_seconds": round(i.load_seconds, 3),
                    "idle_seconds": round(now - i.last_used, 3), "loaded_at": i.loaded_at,
                }
                for i in self.instances
            ]
            loads = list(self.load_seconds)
            state = {
                "model_name": self.name,
                "loaded": bool(self.instances),
                "instances": len(self.instances),
                "busy_instances": sum(i.busy for i in self.instances),
                "loading_instances": self.loading,
                "target_instances": self.target,
                "min_instances": self.floor,
                "max_instances": self.max_instances,
                "autoscale_max_instances": min(self.auto_max, self.max_instances),
                "scale_ups": self.scale_ups,
                "scale_downs": self.scale_downs,
                "queue_depth": len(self._waiters),
                "max_queue_depth": self.max_queue_depth,
                "loads": self.loads,
                "load_failures": self.load_failures,
                "unloads": self.unloads,
                "idle_unloads": self.idle_unloads,
                "last_load_seconds": round(loads[-1], 3) if loads else None,
                "mean_load_seconds": round(sum(loads) / len(loads), 3) if loads else None,
                "last_used_at": self.last_used_at,
                "last_error": self.last_error,
                "cache_hits": self.hits,
                "cache_misses": self.misses,
                "optimized": self.optimization is not None,
                "optimization": self.optimization,
                "instance_details": instances,
            }
        return {**state, **self.latency.totals(), "window": self.latency.summary(window_seconds)}
