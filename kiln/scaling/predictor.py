"""The scaling predictor: per served model, a forecaster of its request rate and its measured throughput
per instance, trained on the recorded traffic samples; stored as a Kiln model (``scaling-predictor``).

``train`` is what the Dagster asset runs; ``ScalingPredictor`` is what the routes and the model worker's
predictive loop load. Too little history for a model means no forecaster for it, and the reason is kept.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from kiln.db import Database
from kiln.scaling import forecast
from kiln.scaling.models import TrafficSample
from kiln.store import ModelStore, StoredModel, fingerprint_of
from kiln.tasks.models import utcnow
from kiln.tasks.records import as_utc

NAME = "scaling-predictor"
TASK = "scaling-forecast"
ARTIFACT = "predictor.joblib"
SUMMARY = "summary.json"
DAY_SECONDS = 86400.0
BUSY_FOR_CAPACITY = 0.2  # samples busier than this tell the throughput per instance


@dataclass
class Series:
    model: str
    sampled_at: list[datetime]
    rates: np.ndarray  # requests/s per sample
    instances: np.ndarray
    busy_share: np.ndarray
    sample_seconds: float

    def phase_minutes(self, cycle_seconds: float = DAY_SECONDS) -> np.ndarray:
        """Where each sample falls in the traffic's cycle, in minutes of a 1440-minute cycle: the minute of
        the (UTC) day for the default daily cycle; a shorter cycle replays a compressed day."""
        epoch = np.array([s.timestamp() for s in self.sampled_at], dtype=float)
        return (epoch % cycle_seconds) / cycle_seconds * 1440.0

    def capacity_rps(self) -> float | None:
        """Requests/s one busy instance served: the median over samples busy enough to say."""
        busy = (self.busy_share >= BUSY_FOR_CAPACITY) & (self.rates > 0)
        if not busy.any():
            return None
        return float(np.median(self.rates[busy] / (self.busy_share[busy] * np.maximum(1, self.instances[busy]))))


def load_series(database: Database, since: datetime, model: str | None = None) -> dict[str, Series]:
    query = select(TrafficSample).where(TrafficSample.sampled_at >= since).order_by(TrafficSample.sampled_at, TrafficSample.id)
    if model is not None:
        query = query.where(TrafficSample.model_name == model)
    with database.session() as session:
        rows = [(r.model_name, as_utc(r.sampled_at), r.rate, r.instances, r.busy_share, r.seconds)
                for r in session.scalars(query)]
    grouped: dict[str, list[tuple]] = {}
    for row in rows:
        grouped.setdefault(row[0], []).append(row)
    series = {}
    for name, items in grouped.items():
        stamps = [i[1] for i in items]
        series[name] = Series(
            name, stamps, np.array([i[2] for i in items], dtype=float), np.array([i[3] for i in items], dtype=float), np.array([i[4] for i in items], dtype=float),
            float(np.median([i[5] for i in items])),
        )
    return series


def horizon_steps(horizon_minutes: float, sample_seconds: float) -> int:
    return max(1, round(horizon_minutes * 60 / sample_seconds))


@dataclass
class ModelForecast:
    forecaster: forecast.Forecaster
    capacity_rps: float | None
    evaluation: dict[str, float]
    samples: int


@dataclass
class ScalingPredictor:
    models: dict[str, ModelForecast]
    skipped: dict[str, str]  # model -> why it has no forecaster
    horizon_minutes: float
    target_utilization: float
    max_instances: int
    trained_until: str
    training_seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)  # the stored model's manifest info (registry, run)
    cycle_seconds: float = DAY_SECONDS  # the period of the time-of-day features (KILN_TRAFFIC_CYCLE_SECONDS)

    @property
    def accuracy(self) -> float | None:
        values = [m.evaluation["accuracy"] for m in self.models.values()]
        return round(float(np.mean(values)), 4) if values else None

    def summary(self) -> dict[str, Any]:
        return {
            "horizon_minutes": self.horizon_minutes, "cycle_seconds": self.cycle_seconds, "trained_until": self.trained_until,
            "training_seconds": round(self.training_seconds, 3), "accuracy": self.accuracy,
            "models": {name: {"method": m.forecaster.method, "capacity_rps_per_instance": m.capacity_rps,
                              "samples": m.samples, "validation_mae": m.forecaster.validation_mae, **m.evaluation}
                       for name, m in self.models.items()},
            "skipped": self.skipped,
        }

    def needed(self, model: str, rate: float) -> int:
        capacity = self.models[model].capacity_rps if model in self.models else None
        return forecast.needed_instances(rate, capacity, self.target_utilization, self.max_instances)

    def predict(self, series: Series) -> dict[str, Any]:
        """The forecast for one model from its latest samples: rate, interval, replicas, confidence, reason."""
        current = int(series.instances[-1]) if len(series.instances) else 0
        answer = {"service": series.model, "current_replicas": current, "predicted_replicas": current,
                  "confidence": 0.0, "prediction_horizon": f"{self.horizon_minutes:g}m"}
        fitted = self.models.get(series.model)
        if fitted is None:
            reason = self.skipped.get(series.model, "it had no traffic samples when the predictor was trained")
            return {**answer, "reason": f"No forecast for {series.model}: {reason}"}
        if len(series.rates) < forecast.LAGS:
            return {**answer, "reason": f"No forecast for {series.model}: {len(series.rates)} recent samples, "
                                        f"the forecaster needs {forecast.LAGS}"}
        predicted = fitted.forecaster.predict(series.rates, series.phase_minutes(self.cycle_seconds))
        replicas = self.needed(series.model, predicted["rate"])
        now_rate = float(series.rates[-3:].mean())
        trend = "rising" if predicted["rate"] > now_rate * 1.1 else "falling" if predicted["rate"] < now_rate * 0.9 else "steady"
        capacity = f"{fitted.capacity_rps:.1f} req/s per instance" if fitted.capacity_rps else "no measured capacity yet"
        reason = (f"{fitted.forecaster.method}: request rate {now_rate:.2f} -> {predicted['rate']:.2f} req/s "
                  f"({trend}, interval {predicted['low']:.2f}-{predicted['high']:.2f}) in {self.horizon_minutes:g}m; {capacity}")
        return {**answer, "predicted_replicas": replicas, "confidence": predicted["confidence"], "reason": reason,
                "predicted_request_rate": round(predicted["rate"], 4), "current_request_rate": round(now_rate, 4),
                "capacity_rps_per_instance": fitted.capacity_rps}


def train(database: Database, training_hours: float, horizon_minutes: float, min_samples: int,
          target_utilization: float, max_instances: int, seed: int = 0,
          cycle_seconds: float = DAY_SECONDS) -> ScalingPredictor:
    started = time.perf_counter()
    until = utcnow()
    series = load_series(database, until - timedelta(hours=training_hours))
    models: dict[str, ModelForecast] = {}
    skipped: dict[str, str] = {}
    for name, s in sorted(series.items()):
        if len(s.rates) < min_samples:
            skipped[name] = f"too little history: {len(s.rates)} samples, at least {min_samples} needed"
            continue
        horizon = horizon_steps(horizon_minutes, s.sample_seconds)
        tail = int(len(s.rates) * 0.8)  # the held-out tail: evaluated, never fitted
        phase = s.phase_minutes(cycle_seconds)
        fitted = forecast.fit(s.rates[:tail], phase[:tail], horizon, seed)
        capacity = s.capacity_rps()
        evaluation = forecast.evaluate(s.rates, phase, fitted, tail, capacity, target_utilization, max_instances)
        models[name] = ModelForecast(fitted, capacity, evaluation, len(s.rates))
    trained_until = max((s.sampled_at[-1] for s in series.values()), default=until).isoformat()
    return ScalingPredictor(models, skipped, horizon_minutes, target_utilization, max_instances, trained_until,
                            time.perf_counter() - started, cycle_seconds=cycle_seconds)


def training_params(settings: Any, training_hours: int) -> dict[str, Any]:
    """What a training depends on besides the samples (the asset and the retrain route agree on it)."""
    return {"training_hours": training_hours, "horizon_minutes": settings.scaling_horizon_minutes,
            "min_samples": settings.scaling_min_history_samples, "target_utilization": settings.scale_up_utilization,
            "max_instances": settings.max_instances, "cycle_seconds": settings.traffic_cycle_seconds}


def data_fingerprint(database: Database, training_hours: float, params: dict[str, Any]) -> str:
    """Changes whenever a sample is added in the window (or the parameters change): retraining on the
    same data is skipped unless forced."""
    from sqlalchemy import func

    since = utcnow() - timedelta(hours=training_hours)
    with database.session() as session:
        count, last = session.execute(select(func.count(TrafficSample.id), func.max(TrafficSample.id))
                                      .where(TrafficSample.sampled_at >= since)).one()
    return fingerprint_of("scaling-predictor", count, last, params)


def save(store: ModelStore, predictor: ScalingPredictor, fingerprint: str, replace: bool = False) -> StoredModel:
    import joblib

    existing = store.find(NAME, fingerprint)
    if existing is not None and not replace:
        return existing
    with store.stage(NAME, fingerprint, TASK, info={"training_seconds": predictor.training_seconds}) as staging:
        joblib.dump(predictor, staging / ARTIFACT)
        (staging / SUMMARY).write_text(json.dumps(predictor.summary(), indent=2, default=str))
    return store.find(NAME, fingerprint)


def load(model: StoredModel) -> ScalingPredictor:
    import joblib

    predictor: ScalingPredictor = joblib.load(Path(model.path) / ARTIFACT)
    predictor.info = dict(model.info)
    return predictor


def champion(store: ModelStore) -> StoredModel | None:
    """The newest stored predictor the registry's champion gate passed (``champion`` in its manifest)."""
    passed = [m for m in store.versions(NAME) if m.info.get("champion")]
    return passed[-1] if passed else None


class ChampionPredictor:
    """The champion predictor, loaded once per registry version: callers ask on every round, and a newly
    passed predictor replaces the loaded one on the next ask."""

    def __init__(self, store: ModelStore):
        self.store = store
        self._loaded: tuple[str, ScalingPredictor] | None = None

    def get(self) -> ScalingPredictor | None:
        model = champion(self.store)
        if model is None:
            return None
        if self._loaded is None or self._loaded[0] != model.version:
            self._loaded = (model.version, load(model))
        return self._loaded[1]
