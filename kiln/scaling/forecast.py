"""Forecasting a served model's request rate a few minutes ahead, from its minute traffic samples, and
turning a rate into the instances it needs.

Two candidate methods, chosen per model by measurement on a validation slice of the training window:
- ``persistence``: the rate of the last minutes (a mean over a short window) stays;
- ``lag_boost``: gradient boosting (scikit-learn) on lag, rolling-mean and time-of-day features.
The interval comes from the chosen method's own validation residuals (10th and 90th percentiles), so the
confidence of a prediction says how well that method did on this model's traffic, not a constant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

LAGS = 6  # minutes of recent rate the features see
ROLLING = 15  # minutes of the rolling mean


def needed_instances(rate: float, capacity_rps: float | None, target_utilization: float, cap: int) -> int:
    """Instances that serve ``rate`` requests/s with each kept at ``target_utilization`` of its measured
    capacity (requests/s per busy instance); at least one while there is traffic, at most ``cap``."""
    if rate <= 0:
        return 0
    if not capacity_rps or capacity_rps <= 0:
        return 1
    return max(1, min(cap, math.ceil(rate / (capacity_rps * target_utilization))))


def features(rates: np.ndarray, minutes_of_day: np.ndarray, t: int) -> list[float]:
    """Features known at minute ``t`` (inclusive): the last LAGS rates, a rolling mean, the time of day."""
    lags = [rates[t - k] if t - k >= 0 else rates[0] for k in range(LAGS)]
    window = rates[max(0, t - ROLLING + 1): t + 1]
    angle = 2 * math.pi * minutes_of_day[t] / 1440.0
    return [*lags, float(window.mean()), math.sin(angle), math.cos(angle)]


def supervised(rates: np.ndarray, minutes_of_day: np.ndarray, horizon: int, start: int, stop: int):
    """(X, y) pairs for origins ``start..stop-1``: features at t, target the rate at t + horizon."""
    origins = [t for t in range(start, stop) if t + horizon < len(rates)]
    X = np.array([features(rates, minutes_of_day, t) for t in origins]).reshape(len(origins), LAGS + 3)
    y = np.array([rates[t + horizon] for t in origins])
    return X, y, origins


@dataclass
class Forecaster:
    """A fitted forecaster for one model's rate; ``predict`` sees only what was known at the origin."""

    method: str
    horizon_steps: int  # samples ahead (minutes with the default sampling)
    residual_low: float = 0.0  # validation residual quantiles (actual - predicted)
    residual_high: float = 0.0
    validation_mae: dict[str, float] = field(default_factory=dict)  # every candidate's, for the record
    regressor: Any = None

    def points(self, rates: np.ndarray, minutes_of_day: np.ndarray, origins: list[int]) -> np.ndarray:
        """Forecasts from each origin t, each from rates[: t + 1] only (features never look ahead), in one
        call of the regressor."""
        if self.method == "lag_boost":
            X = np.array([features(rates, minutes_of_day, t) for t in origins]).reshape(len(origins), LAGS + 3)
            from threadpoolctl import threadpool_limits

            with threadpool_limits(1):
                values = self.regressor.predict(X)
        else:
            values = _persistence(rates, origins)
        return np.maximum(0.0, values)

    def point(self, rates: np.ndarray, minutes_of_day: np.ndarray) -> float:
        return float(self.points(rates, minutes_of_day, [len(rates) - 1])[0])

    def predict(self, rates: np.ndarray, minutes_of_day: np.ndarray) -> dict[str, float]:
        point = self.point(rates, minutes_of_day)
        low, high = max(0.0, point + self.residual_low), max(0.0, point + self.residual_high)
        # Confidence: how narrow the interval is against the prediction (1 for a tight one, 0 for one as
        # wide as the value itself or wider).
        scale = max(point, 1e-3)
        confidence = max(0.0, min(1.0, 1.0 - (high - low) / (2 * scale)))
        return {"rate": point, "low": low, "high": high, "confidence": round(confidence, 3)}


def _fit_boost(X: np.ndarray, y: np.ndarray, seed: int):
    from sklearn.ensemble import HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    # One thread: small data, and OpenMP threads spin against the model workers on a busy machine.
    with threadpool_limits(1):
        return HistGradientBoostingRegressor(max_iter=150, learning_rate=0.08, max_leaf_nodes=15,
                                             random_state=seed).fit(X, y)


def _persistence(rates: np.ndarray, origins: list[int]) -> np.ndarray:
    return np.array([rates[max(0, t - 2): t + 1].mean() for t in origins])


def fit(rates: np.ndarray, minutes_of_day: np.ndarray, horizon: int, seed: int = 0) -> Forecaster:
    """Choose the method with the lower validation MAE (the last fifth of ``rates``), then refit it on all."""
    n = len(rates)
    split = int(n * 0.8)
    X_fit, y_fit, _ = supervised(rates, minutes_of_day, horizon, 0, split - horizon)
    X_val, y_val, val_origins = supervised(rates, minutes_of_day, horizon, split - horizon, n)
    candidates: dict[str, np.ndarray] = {"persistence": _persistence(rates, val_origins)}
    if len(y_fit) >= 30:  # too few pairs for a boosted model to mean anything
        candidates["lag_boost"] = np.maximum(0.0, _fit_boost(X_fit, y_fit, seed).predict(X_val))
    mae = {name: float(np.mean(np.abs(y_val - predicted))) for name, predicted in candidates.items()}
    method = min(mae, key=mae.get)
    residuals = y_val - candidates[method]
    regressor = None
    if method == "lag_boost":
        X_all, y_all, _ = supervised(rates, minutes_of_day, horizon, 0, n)
        regressor = _fit_boost(X_all, y_all, seed)
    return Forecaster(method, horizon, float(np.quantile(residuals, 0.1)), float(np.quantile(residuals, 0.9)),
                      {k: round(v, 4) for k, v in mae.items()}, regressor)


def evaluate(rates: np.ndarray, minutes_of_day: np.ndarray, forecaster: Forecaster, start: int,
             capacity_rps: float | None, target_utilization: float, cap: int) -> dict[str, float]:
    """MAE and MAPE of the rate over origins from ``start``, and the share of them where the predicted
    instance count equals the count the real traffic needed ("accuracy")."""
    origins = list(range(start, len(rates) - forecaster.horizon_steps))
    if not origins:
        raise ValueError("no evaluation points: the held-out tail is shorter than the horizon")
    predicted = forecaster.points(rates, minutes_of_day, origins)
    actual = rates[np.array(origins) + forecaster.horizon_steps]
    p, a = predicted, actual
    nonzero = a > 0
    hits = [needed_instances(x, capacity_rps, target_utilization, cap) == needed_instances(y, capacity_rps, target_utilization, cap)
            for x, y in zip(p, a, strict=True)]
    return {
        "mae_rps": round(float(np.mean(np.abs(p - a))), 4),
        "mape": round(float(np.mean(np.abs(p[nonzero] - a[nonzero]) / a[nonzero])), 4) if nonzero.any() else 0.0,
        "accuracy": round(float(np.mean(hits)), 4),
        "points": len(predicted),
    }
