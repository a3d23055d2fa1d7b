"""Every change of a model's instance pool, as a ``scaling_event`` in the event log (what the events
websocket sends, and the scaling history). Pools report changes holding their lock, so the report only
goes on a queue; a thread writes it to the database."""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

from kiln.db import Database
from kiln.tasks import events
from kiln.tasks.models import utcnow

log = logging.getLogger("kiln.autoscaler")


def system_usage() -> dict[str, float]:
    """The machine's CPU and memory use when the decision was taken (seed 002's decision metrics)."""
    import psutil

    return {"cpu_usage": psutil.cpu_percent(interval=None), "memory_usage": psutil.virtual_memory().percent}


class ScalingLog:
    def __init__(self, database: Database):
        self.database = database
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="kiln-scaling-log", daemon=True)
        self._thread.start()

    def record(self, change: dict[str, Any]) -> None:
        """Non-blocking: safe to call holding a pool's lock."""
        self._queue.put({**change, "timestamp": events.stamp(utcnow())})

    def _run(self) -> None:
        migrated = False
        while True:
            change = self._queue.get()
            if change is None:
                return
            if not migrated:  # the model worker may start before the gateway migrated the records
                try:
                    self.database.migrate()
                    migrated = True
                except Exception:
                    log.exception("could not migrate Kiln's records database")
            change["metrics"] = {**system_usage(), **change.get("metrics", {})}
            log.info("pool scaled", extra={k: change[k] for k in ("service", "action", "from_replicas", "to_replicas", "trigger")})
            events.publish(self.database, "scaling_event", change)

    def close(self) -> None:
        self._queue.put(None)
