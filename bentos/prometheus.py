"""Kiln's own Prometheus series beside BentoML's, on the same ``/metrics``: ``kiln_requests_total`` and
``kiln_request_duration_seconds`` per route template (never per raw path, so ids don't explode the
series), and ``kiln_tasks{status}``, ``kiln_tasks_queue_depth``, ``kiln_task_workers`` from the task
records. Made at the gateway's start, after BentoML set up its multiprocess metrics directory."""

from __future__ import annotations

import logging
import threading
from types import SimpleNamespace
from typing import Any

log = logging.getLogger("kiln.gateway")
_series: SimpleNamespace | None = None
_lock = threading.Lock()
STATUSES = ("pending", "scheduled", "running", "completed", "failed", "cancelled")


def series() -> SimpleNamespace:
    global _series
    with _lock:
        if _series is None:
            from prometheus_client import Counter, Gauge, Histogram

            _series = SimpleNamespace(
                requests=Counter("kiln_requests_total", "Requests Kiln's API answered", ["method", "route", "status"]),
                duration=Histogram("kiln_request_duration_seconds", "Time to answer a request", ["method", "route"],
                                   buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)),
                tasks=Gauge("kiln_tasks", "Tasks in Kiln's records, by status", ["status"], multiprocess_mode="max"),
                queue_depth=Gauge("kiln_tasks_queue_depth", "Tasks due to run, not started", multiprocess_mode="max"),
                workers=Gauge("kiln_task_workers", "Task worker processes heard from lately", multiprocess_mode="max"),
                throughput=Gauge("kiln_tasks_completed_per_minute", "Tasks completed per minute (last 10 min)",
                                 multiprocess_mode="max"),
            )
        return _series


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    metrics = series()
    metrics.requests.labels(method, route, str(status)).inc()
    metrics.duration.labels(method, route).observe(seconds)


class TaskGauges:
    """Refreshes the task series from the records every ``interval`` seconds, in a daemon thread."""

    def __init__(self, tasks: Any, interval: float = 5.0):
        self.tasks = tasks
        self.interval = interval
        self._stop = threading.Event()

    def refresh(self) -> None:
        figures = self.tasks.metrics()
        metrics = series()
        for status in STATUSES:
            metrics.tasks.labels(status).set(figures[f"tasks_{status}"])
        metrics.queue_depth.set(figures["queue_depth"])
        metrics.workers.set(figures["worker_count"])
        metrics.throughput.set(figures["throughput"])

    def start(self) -> TaskGauges:
        def loop() -> None:
            while not self._stop.wait(self.interval):
                try:
                    self.refresh()
                except Exception:
                    log.exception("refreshing the task metrics failed")

        threading.Thread(target=loop, name="kiln-task-gauges", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
