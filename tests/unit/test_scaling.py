"""The scaling predictor: forecasting a generated daily cycle with spikes, the rate-to-instances rule,
too little history, training from recorded samples, and the sampler over real pool counters."""

from datetime import timedelta

import numpy as np
import pytest

from kiln.db import Database
from kiln.scaling import forecast
from kiln.scaling import predictor as predictors
from kiln.store import ModelStore
from kiln.tasks.models import utcnow
from tests.traffic import daily_rates, write_samples


@pytest.fixture
def database(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'kiln.db'}")
    database.migrate()
    yield database
    database.dispose()


def test_needed_instances_follow_the_measured_capacity():
    assert forecast.needed_instances(0.0, 8.0, 0.75, 4) == 0
    assert forecast.needed_instances(5.9, 8.0, 0.75, 4) == 1  # 6 req/s is one instance at 75 %
    assert forecast.needed_instances(6.1, 8.0, 0.75, 4) == 2
    assert forecast.needed_instances(1000.0, 8.0, 0.75, 4) == 4  # never past the cap
    assert forecast.needed_instances(3.0, None, 0.75, 4) == 1  # no measured capacity: one, never a guess


def test_the_forecaster_follows_a_daily_cycle_with_spikes():
    minutes = 3 * 1440
    rates = daily_rates(minutes, seed=1)
    minute_of_day = np.arange(minutes) % 1440.0
    tail = int(minutes * 0.8)
    fitted = forecast.fit(rates[:tail], minute_of_day[:tail], horizon=5)
    scores = forecast.evaluate(rates, minute_of_day, fitted, tail, 8.0, 0.75, 8)
    mean_baseline = float(np.mean(np.abs(rates[tail + 5:] - rates[:tail].mean())))
    assert scores["mae_rps"] < 0.5 * mean_baseline, (scores, mean_baseline)
    assert scores["accuracy"] >= 0.7, scores
    assert set(fitted.validation_mae) == {"persistence", "lag_boost"}  # chosen by measurement
    assert fitted.method == min(fitted.validation_mae, key=fitted.validation_mae.get)
    prediction = fitted.predict(rates[:tail], minute_of_day[:tail])
    assert prediction["low"] <= prediction["rate"] <= prediction["high"] and 0 <= prediction["confidence"] <= 1


def test_training_on_recorded_samples_and_too_little_history(database, tmp_path):
    write_samples(database, "busy", daily_rates(600, seed=2))
    write_samples(database, "quiet", daily_rates(20, seed=3))
    trained = predictors.train(database, training_hours=24, horizon_minutes=5, min_samples=60,
                               target_utilization=0.75, max_instances=8)
    assert set(trained.models) == {"busy"}
    assert "too little history: 20 samples, at least 60 needed" in trained.skipped["quiet"]
    assert trained.models["busy"].capacity_rps == pytest.approx(8.0, rel=0.1)  # measured from the samples
    assert 0 <= trained.accuracy <= 1 and trained.models["busy"].evaluation["points"] > 50
    store = ModelStore(tmp_path / "store")
    fingerprint = predictors.data_fingerprint(database, 24, {"x": 1})
    model = predictors.save(store, trained, fingerprint)
    loaded = predictors.load(model)
    series = predictors.load_series(database, utcnow() - timedelta(minutes=30))
    busy = loaded.predict(series["busy"])
    assert busy["confidence"] > 0 and busy["predicted_replicas"] >= 1 and "req/s" in busy["reason"]
    quiet = loaded.predict(series["quiet"])
    assert quiet["confidence"] == 0 and quiet["predicted_replicas"] == quiet["current_replicas"]
    assert "too little history" in quiet["reason"]
    write_samples(database, "busy", daily_rates(1, seed=4))  # new traffic: a new fingerprint
    assert predictors.data_fingerprint(database, 24, {"x": 1}) != fingerprint


def test_no_samples_trains_nothing(database):
    trained = predictors.train(database, 24, 5, 60, 0.75, 8)
    assert trained.models == {} and trained.accuracy is None


def test_the_time_of_day_features_follow_the_configured_cycle(database):
    """A compressed day (a 360 s cycle sampled every 5 s) whose rate jumps at mid-cycle: trained on that
    cycle, the forecaster sees the jump coming before any lag shows it; trained on the daily cycle it
    cannot (every sample of a few minutes has nearly the same time of day)."""
    import time
    from datetime import datetime, timezone

    cycle, step = 360, 5
    base = (int(time.time()) // cycle) * cycle - 5 * cycle
    count = 4 * (cycle // step) + 34  # four cycles, then up to two samples before the jump
    phases = ((np.arange(count) + 1) * step % cycle) / cycle
    rates = np.where((phases >= 0.5) & (phases < 0.75), 20.0, 1.0)
    write_samples(database, "compressed", rates, end=datetime.fromtimestamp(base + step * count, tz=timezone.utc),
                  seconds=step)
    recent = predictors.load_series(database, utcnow() - timedelta(hours=1))["compressed"]
    compressed = predictors.train(database, 1, 0.25, 60, 0.75, 8, cycle_seconds=cycle)  # 15 s: 3 samples ahead
    daily = predictors.train(database, 1, 0.25, 60, 0.75, 8)
    assert compressed.models["compressed"].forecaster.horizon_steps == 3
    assert compressed.predict(recent)["predicted_request_rate"] > 10, compressed.summary()
    assert daily.predict(recent)["predicted_request_rate"] < 5, daily.summary()
    assert compressed.summary()["cycle_seconds"] == cycle
