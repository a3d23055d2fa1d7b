"""Request statistics over a sliding time window: counts, throughput and latency percentiles."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any


def percentile(ordered: list[float], q: float) -> float:
    """Linear-interpolated percentile ``q`` (0-100) of an already sorted list; 0.0 when empty."""
    if not ordered:
        return 0.0
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


class LatencyWindow:
    """Timestamped samples (latency, items, ok) kept for ``window_seconds``; thread-safe.

    Totals (``count``, ``errors``, ``items``) cover the whole lifetime; ``summary()`` covers a window.
    """

    def __init__(self, window_seconds: float = 300.0, max_samples: int = 100_000, clock: Callable[[], float] = time.monotonic):
        self.window_seconds = window_seconds
        self.clock = clock
        self.started = clock()
        self._samples: deque[tuple[float, float, int, bool]] = deque(maxlen=max_samples)
        self._lock = threading.Lock()
        self.count = 0
        self.errors = 0
        self.items = 0

    def record(self, seconds: float, ok: bool = True, items: int = 1) -> None:
        now = self.clock()
        with self._lock:
            self._samples.append((now, seconds, items, ok))
            self.count += 1
            self.items += items
            self.errors += 0 if ok else 1
            self._trim(now)

    def _trim(self, now: float) -> None:
        horizon = now - self.window_seconds
        while self._samples and self._samples[0][0] < horizon:
            self._samples.popleft()

    def summary(self, window_seconds: float | None = None) -> dict[str, Any]:
        """Stats for the last ``window_seconds`` (capped at the kept window and at the uptime)."""
        now = self.clock()
        window = min(window_seconds or self.window_seconds, self.window_seconds)
        with self._lock:
            self._trim(now)
            recent = [s for s in self._samples if s[0] >= now - window]
        span = max(min(window, now - self.started), 1e-9)
        latencies = sorted(s[1] for s in recent)
        ok = [s for s in recent if s[3]]
        return {
            "window_seconds": round(window, 3),
            "requests": len(recent),
            "errors": len(recent) - len(ok),
            "items": sum(s[2] for s in recent),
            "throughput_rps": round(len(ok) / span, 3),
            "items_per_second": round(sum(s[2] for s in ok) / span, 3),
            "latency_ms": {
                "mean": round(1000 * sum(latencies) / len(latencies), 3) if latencies else 0.0,
                "p50": round(1000 * percentile(latencies, 50), 3),
                "p95": round(1000 * percentile(latencies, 95), 3),
                "p99": round(1000 * percentile(latencies, 99), 3),
                "max": round(1000 * latencies[-1], 3) if latencies else 0.0,
            },
        }

    def totals(self) -> dict[str, int]:
        return {"requests": self.count, "errors": self.errors, "items": self.items}
