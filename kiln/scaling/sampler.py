"""The model worker's traffic sampler and predictive step.

Every ``KILN_TRAFFIC_SAMPLE_SECONDS`` it writes one sample per model pool from the pool's real counters
(requests, errors, p95 latency, instances, busy share over the interval), prunes samples past the
retention, and, with ``KILN_PREDICTIVE_SCALING`` at ``preview`` or ``apply``, asks the champion scaling
predictor what each pool will need: ``preview`` records the decision it would take (trigger
``ml_prediction``, ``applied: false``); ``apply`` grows the pool ahead of the rise. The reactive rules
(load growth, idle shrink, the TTL) stay as they are: predictions only add instances early.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Any

from sqlalchemy import delete

from kiln.db import Database
from kiln.scaling import forecast
from kiln.scaling import predictor as predictors
from kiln.scaling.models import TrafficSample
from kiln.store import ModelStore
from kiln.tasks.models import utcnow

log = logging.getLogger("kiln.scaling")


class TrafficSampler:
    def __init__(self, settings: Any, database: Database, autoscaler: Any, record_decision: Any):
        self.settings = settings
        self.database = database
        self.autoscaler = autoscaler
        self.record_decision = record_decision  # ScalingLog.record: a scaling_event in the event log
        self.interval = settings.traffic_sample_seconds
        self.store = ModelStore(settings.model_store_dir)
        self._marks: dict[str, tuple[int, int, float]] = {}  # pool -> (count, errors, busy_seconds) at the last sample
        self.champion = predictors.ChampionPredictor(self.store)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> TrafficSampler:
        self._thread = threading.Thread(target=self._run, name="kiln-traffic-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        self.database.migrate()
        while not self._stop.wait(self.interval):
            try:
                self.sample()
                if self.settings.predictive_scaling != "off":
                    self.predict_and_act()
            except Exception:  # one failed round must not end the sampling
                log.exception("traffic sampling failed")

    def sample(self) -> list[TrafficSample]:
        now = utcnow()
        rows = []
        with self.autoscaler._lock:
            pools = dict(self.autoscaler.pools)
        for name, pool in sorted(pools.items()):
            count, errors, busy = pool.latency.count, pool.latency.errors, pool.busy_seconds
            last = self._marks.get(name, (0, 0, 0.0))  # a new pool: everything it counted is this interval's
            self._marks[name] = (count, errors, busy)
            instances = len(pool.instances)
            window = pool.latency.summary(self.interval)
            rows.append(TrafficSample(
                model_name=name, sampled_at=now, seconds=self.interval, requests=count - last[0], errors=errors - last[1],
                p95_ms=window["latency_ms"]["p95"], instances=instances,
                busy_share=round(min(1.0, (busy - last[2]) / (self.interval * max(1, instances))), 4),
            ))
        cutoff = now - timedelta(hours=self.settings.traffic_retention_hours)
        with self.database.session() as session:
            session.add_all(rows)
            session.execute(delete(TrafficSample).where(TrafficSample.sampled_at < cutoff))
        return rows

    def predict_and_act(self) -> list[dict[str, Any]]:
        predictor = self.champion.get()
        if predictor is None:
            return []
        since = utcnow() - timedelta(seconds=self.interval * (forecast.ROLLING + forecast.LAGS + 2))
        decisions = []
        with self.autoscaler._lock:
            pools = dict(self.autoscaler.pools)
        for name, series in predictors.load_series(self.database, since).items():
            pool = pools.get(name)
            if pool is None:
                continue
            prediction = predictor.predict(series)
            current, wanted = len(pool.instances), prediction["predicted_replicas"]
            if prediction["confidence"] <= 0 or wanted == current:
                continue
            reason = prediction["reason"]
            metrics = {"request_rate": prediction.get("current_request_rate"), "predicted_request_rate":
                       prediction.get("predicted_request_rate"), "confidence": prediction["confidence"],
                       "horizon_minutes": predictor.horizon_minutes,
                       "capacity_rps_per_instance": prediction.get("capacity_rps_per_instance")}
            if self.settings.predictive_scaling == "apply" and wanted > current:
                added = pool.grow_to(wanted, "ml_prediction", reason)
                decisions.append({"service": name, "applied": True, "added": added, "to_replicas": wanted})
                continue  # the pool records its own scaling_event for what it added
            decision = {"service": name, "action": "scale_up" if wanted > current else "scale_down",
                        "from_replicas": current, "to_replicas": wanted, "trigger": "ml_prediction",
                        "reason": reason, "applied": False, "metrics": metrics}
            self.record_decision(decision)
            decisions.append(decision)
        return decisions

