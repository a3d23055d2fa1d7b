"""Generated traffic for the scaling predictor's tests: a daily cycle with spikes, as minute samples."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import numpy as np

from kiln.db import Database
from kiln.scaling.models import TrafficSample


def daily_rates(minutes: int, seed: int = 0, peak: float = 20.0, spikes: int = 4) -> np.ndarray:
    """Requests/s per minute: a daily cycle between 1 and ``peak``, noise, and a few short spikes."""
    rng = np.random.default_rng(seed)
    t = np.arange(minutes)
    cycle = 1 + (peak - 1) * (0.5 - 0.5 * np.cos(2 * math.pi * t / 1440))
    rates = cycle + rng.normal(0, 0.5, minutes)
    for start in rng.integers(0, max(1, minutes - 20), spikes):
        rates[start:start + 10] += peak * 0.6
    return np.maximum(0.0, rates)


def write_samples(database: Database, model: str, rates: np.ndarray, capacity: float = 8.0,
                  end: datetime | None = None, seconds: float = 60.0) -> None:
    """Samples as the model worker writes them: the instances the load needed at ``capacity`` req/s each,
    and the busy share that traffic gives them."""
    end = end or datetime.now(timezone.utc)
    start = end - timedelta(seconds=seconds * len(rates))
    rows = []
    for index, rate in enumerate(rates):
        instances = max(1, math.ceil(rate / (capacity * 0.75)))
        rows.append(TrafficSample(
            model_name=model, sampled_at=start + timedelta(seconds=seconds * (index + 1)), seconds=seconds,
            requests=int(round(rate * seconds)), errors=0, p95_ms=20.0, instances=instances,
            busy_share=min(1.0, rate / (capacity * instances)),
        ))
    with database.session() as session:
        session.add_all(rows)
