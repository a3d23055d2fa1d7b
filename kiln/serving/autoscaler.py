"""The model worker's autoscaler: one ``InstancePool`` per servable model, and the reaper thread that
shrinks pools when their load goes and unloads idle models after the TTL (scale to zero).
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kiln.catalog import UnknownModel
from kiln.serving.pool import InstancePool

log = logging.getLogger("kiln.autoscaler")


class Autoscaler:
    """One ``InstancePool`` per servable model, plus the idle reaper.

    ``discover()`` returns the servable models as {name: spec}; ``loader(spec)`` loads one instance.
    Models found after start-up (a new pipeline run) are picked up by re-discovering on a miss.
    """

    def __init__(
        self,
        discover: Callable[[], dict[str, Any]],
        loader: Callable[[Any], Any],
        idle_ttl_seconds: float = 900.0,
        max_instances: int = 4,
        window_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        autoscale_max_instances: int = 1,
        scale_up_utilization: float = 0.75,
        scale_down_idle_seconds: float = 60.0,
        can_grow: Callable[[str], bool] | None = None,
        on_scale: Callable[[dict[str, Any]], None] | None = None,
    ):
        self.discover = discover
        self.loader = loader
        self.idle_ttl_seconds = idle_ttl_seconds
        self.max_instances = max_instances
        self.autoscale_max_instances = autoscale_max_instances
        self.scale_up_utilization = scale_up_utilization
        self.scale_down_idle_seconds = scale_down_idle_seconds
        self.can_grow = can_grow
        self.on_scale = on_scale
        self.window_seconds = window_seconds
        self.clock = clock
        self.specs: dict[str, Any] = dict(discover())
        self.pools: dict[str, InstancePool] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.reaper_runs = 0
        self.started_at = time.time()

    def refresh(self) -> None:
        specs = dict(self.discover())
        with self._lock:
            self.specs = specs

    def pool(self, name: str) -> InstancePool:
        with self._lock:
            pool = self.pools.get(name)
            if pool is not None and name in self.specs:
                return pool
        if name not in self.specs:
            self.refresh()
        with self._lock:
            if name not in self.specs:
                raise UnknownModel(name, sorted(self.specs))
            spec = self.specs[name]
            pool = self.pools.get(name)
            if pool is None:
                pool = InstancePool(
                    name, lambda: self.loader(spec), self.max_instances, self.window_seconds, self.clock
                )
                pool.auto_max = self.autoscale_max_instances
                pool.grow_at_utilization = self.scale_up_utilization
                if self.can_grow is not None:
                    pool.can_grow = lambda: self.can_grow(name)
                pool.on_scale = self.on_scale
                self.pools[name] = pool
            return pool

    def lease(self, name: str, priority: int = 0, timeout: float | None = None, items: int = 1):
        return self.pool(name).lease(priority, timeout, items)

    def reap(self) -> dict[str, int]:
        """Shrink pools whose extra instances went idle, then unload models idle past the TTL."""
        with self._lock:
            pools = list(self.pools.values())
        shrunk = {pool.name: n for pool in pools if (n := pool.shrink_idle(self.scale_down_idle_seconds))}
        unloaded = {pool.name: n for pool in pools if (n := pool.reap_idle(self.idle_ttl_seconds))}
        self.reaper_runs += 1
        if unloaded or shrunk:
            gc.collect()
            log.info("autoscaler released instances", extra={"scaled_down": shrunk, "unloaded_idle": unloaded})
        return unloaded

    def start(self, interval_seconds: float) -> None:
        """Run ``reap()`` every ``interval_seconds`` in a daemon thread."""
        if (self._thread is not None and self._thread.is_alive()) or (self.idle_ttl_seconds <= 0 and self.autoscale_max_instances <= 1):
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(interval_seconds):
                try:
                    self.reap()
                except Exception:  # a failed sweep must not kill the reaper
                    log.exception("idle reaper failed")

        self._thread = threading.Thread(target=loop, name="kiln-idle-reaper", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the reaper thread and wait for it (a sweep in progress finishes first)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def reaper_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def snapshots(self, window_seconds: float | None = None) -> dict[str, dict[str, Any]]:
        with self._lock:
            names = sorted(self.specs)
            pools = dict(self.pools)
        out = {}
        for name in names:
            if name in pools:
                out[name] = pools[name].snapshot(window_seconds)
            else:
                out[name] = {"model_name": name, "loaded": False, "instances": 0, "queue_depth": 0, "loads": 0, "requests": 0}
        return out
