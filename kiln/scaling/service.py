"""Seed 002's ML Controller, framework-free: scaling predictions from the champion scaling predictor and
the recorded traffic, the history of scaling decisions with how often the predictions were right, and
retraining as a task of the task system (a Dagster run of the ``scaling_predictor`` asset)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from kiln.db import Database
from kiln.scaling import forecast
from kiln.scaling import predictor as predictors
from kiln.scaling.models import TrafficSample
from kiln.store import ModelStore
from kiln.tasks.events import stamp
from kiln.tasks.models import Event, Task, utcnow
from kiln.tasks.records import as_utc

RETRAIN_JOB = "retrain_scaling_predictor"


def duration_text(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds < 90 else f"{seconds / 60:.0f}m"


class ScalingService:
    def __init__(self, settings: Any, database: Database, tasks: Any, store: ModelStore | None = None):
        self.settings = settings
        self.database = database
        self.tasks = tasks  # kiln.tasks.service.TaskService
        self.store = store or ModelStore(settings.model_store_dir)
        self.champion = predictors.ChampionPredictor(self.store)

    # --- GET /ml/scaling/predictions ---

    def predictions(self) -> dict[str, Any]:
        predictor = self.champion.get()
        recent = utcnow() - timedelta(seconds=self.settings.traffic_sample_seconds * (forecast.ROLLING + forecast.LAGS + 2))
        series = predictors.load_series(self.database, recent)
        out = []
        for name, s in sorted(series.items()):
            if predictor is None:
                current = int(s.instances[-1])
                out.append({"service": name, "current_replicas": current, "predicted_replicas": current,
                            "confidence": 0.0, "prediction_horizon": f"{self.settings.scaling_horizon_minutes:g}m",
                            "reason": "No scaling predictor is trained yet: POST /ml/model/retrain "
                                      "(it needs recorded traffic, see KILN_SCALING_MIN_HISTORY_SAMPLES)"})
            else:
                out.append(predictor.predict(s))
        return {
            "timestamp": stamp(utcnow()),
            "predictions": out,
            "model_version": predictor.info.get("registry_version") if predictor else None,
            "model_accuracy": predictor.accuracy if predictor else None,
            "mode": self.settings.predictive_scaling,
        }

    # --- GET /ml/scaling/history ---

    def history(self, hours: int) -> dict[str, Any]:
        since = utcnow() - timedelta(hours=hours)
        with self.database.session() as session:
            events = list(session.scalars(select(Event).where(Event.type == "scaling_event", Event.created_at >= since)
                                          .order_by(Event.id.desc()).limit(10_000)))
            history = [{"timestamp": e.data.get("timestamp") or stamp(e.created_at), "service": e.data.get("service"),
                        "action": e.data.get("action"), "from_replicas": e.data.get("from_replicas"),
                        "to_replicas": e.data.get("to_replicas"), "trigger": e.data.get("trigger"),
                        "reason": e.data.get("reason"), "applied": e.data.get("applied", True),
                        "metrics": e.data.get("metrics", {})} for e in events]
        judged = [right for entry in history if entry["trigger"] == "ml_prediction"
                  and (right := self._was_right(entry)) is not None]
        return {"history": history, "total_decisions": len(history),
                "accuracy_rate": round(sum(judged) / len(judged), 4) if judged else None,
                "judged_predictions": len(judged), "hours": hours}

    def _was_right(self, decision: dict[str, Any]) -> bool | None:
        """A prediction was right when the traffic ``horizon`` later needed the instances it said; None
        while that traffic has not happened yet (or was not recorded)."""
        metrics = decision.get("metrics") or {}
        horizon = metrics.get("horizon_minutes") or self.settings.scaling_horizon_minutes
        when = datetime.fromisoformat(decision["timestamp"].replace("Z", "+00:00")) + timedelta(minutes=horizon)
        slack = timedelta(seconds=self.settings.traffic_sample_seconds)
        with self.database.session() as session:
            sample = session.scalars(select(TrafficSample).where(
                TrafficSample.model_name == decision["service"], TrafficSample.sampled_at >= when - slack,
                TrafficSample.sampled_at <= when + slack).order_by(TrafficSample.sampled_at)).first()
            rate = sample.rate if sample is not None else None
        if rate is None:
            return None
        capacity = metrics.get("capacity_rps_per_instance")
        cap = self.settings.max_instances
        needed = forecast.needed_instances(rate, capacity, self.settings.scale_up_utilization, cap)
        return needed == decision["to_replicas"]

    # --- POST /ml/model/retrain ---

    def retrain(self, owner_id: str | None, training_hours: int, force: bool) -> dict[str, Any]:
        params = predictors.training_params(self.settings, training_hours)
        fingerprint = predictors.data_fingerprint(self.database, training_hours, params)
        last = self.last_training_seconds()
        estimate = duration_text(last) if last is not None else None
        if not force and self.store.find(predictors.NAME, fingerprint) is not None:
            return {"job_id": None, "status": "up_to_date", "estimated_duration": estimate,
                    "message": "No traffic was recorded since the last training on this window; "
                               "force_retrain: true retrains anyway"}
        config = {"ops": {"scaling_predictor": {"config": {"training_hours": training_hours, "force_retrain": force}}}}
        task = self.tasks.create(owner_id, "Retrain the scaling predictor", "pipeline",
                                 {"job": RETRAIN_JOB, "run_config": config}, priority="high")
        return {"job_id": task.id, "status": "started", "estimated_duration": estimate,
                "message": "Model retraining started" + ("" if estimate else
                           " (no earlier training to estimate its duration from)"),
                "task_url": f"/tasks/{task.id}"}

    def last_training_seconds(self) -> float | None:
        """The last retraining's measured duration: its task's run time, else the stored predictor's fit time."""
        with self.database.session() as session:
            done = session.scalars(select(Task).where(Task.task_type == "pipeline", Task.status == "completed")
                                   .order_by(Task.completed_at.desc()).limit(50)).all()
            for task in done:
                if task.parameters.get("job") == RETRAIN_JOB and task.started_at and task.completed_at:
                    return (as_utc(task.completed_at) - as_utc(task.started_at)).total_seconds()
        latest = self.store.latest(predictors.NAME)
        return latest.info.get("training_seconds") if latest else None
