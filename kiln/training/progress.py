"""A training's progress, read back where it is really recorded: the MLflow run its Dagster run logs every
step to (found by the ``kiln.task_id`` tag), and the task's progress events for the status route."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from kiln.db import Database
from kiln.tasks.models import Event, Task
from kiln.training.requests import store_name

TASK_TAG = "kiln.task_id"
VALIDATION = ("accuracy", "f1_score")


def mlflow_progress(tracker: Any, task_id: str) -> dict[str, Any] | None:
    """The latest step, loss, learning rate, epoch and validation metrics of the task's MLflow run."""
    runs = tracker.client.search_runs([tracker.experiment_id()], filter_string=f"tags.`{TASK_TAG}` = '{task_id}'",
                                      max_results=1, order_by=["attributes.start_time DESC"])
    if not runs:
        return None
    run = runs[0]
    metrics, params = run.data.metrics, run.data.params
    found: dict[str, Any] = {"mlflow_run_id": run.info.run_id,
                             "current_step": int(metrics.get("step", 0)),
                             "total_steps": int(params.get("total_steps", 0)) or None,
                             "current_epoch": int(metrics["epoch"]) if "epoch" in metrics else 0,
                             "total_epochs": int(params.get("total_epochs", 0)) or None}
    if "loss" in metrics:
        found["loss"] = metrics["loss"]
    if "learning_rate" in metrics:
        found["learning_rate"] = metrics["learning_rate"]
    found["metrics"] = {name: metrics[name] for name in VALIDATION if name in metrics}
    return found


def latest_report(database: Database, task_id: str) -> dict[str, Any]:
    """The metrics of the task's newest progress event that carried any (what the follower last read)."""
    with database.session() as session:
        rows = session.scalars(select(Event).where(Event.task_id == task_id).order_by(Event.id.desc()).limit(50)).all()
    for row in rows:
        if row.data.get("metrics"):
            return dict(row.data["metrics"])
    return {}


def training_status(task: Task, database: Database) -> dict[str, Any]:
    """Seed 001's GET /api/training/status shape, from the task record and its last progress report."""
    report = latest_report(database, task.id)
    result = task.result or {}
    report.update({k: v for k, v in result.items() if v is not None and k in report})  # a finished run's last word
    final = result.get("metrics") or {}
    status = {
        "task_id": task.id,
        "status": task.status,
        "progress": round(task.progress, 2),
        "current_epoch": report.get("current_epoch", 0),
        "total_epochs": report.get("total_epochs") or task.parameters.get("epochs"),
        "current_step": report.get("current_step", 0),
        "total_steps": report.get("total_steps"),
        "loss": report.get("loss"),
        "learning_rate": report.get("learning_rate"),
        "metrics": {**report.get("metrics", {}), **{k: final[k] for k in VALIDATION if k in final}},
        "message": task.message,
        "error": task.error,
        "model_type": task.parameters.get("model_type"),
        "base_model": task.parameters.get("base_model"),
        "model_name": result.get("model_name") or store_name(task.parameters.get("output_dir", "")),
        "model_version": result.get("model_version"),
        "registered_version": result.get("registered_version"),
        "champion_gate": result.get("champion_gate"),
        "served": result.get("served"),
        "dagster_run_id": report.get("dagster_run_id") or result.get("dagster_run_id"),
        "dagster_run_url": report.get("dagster_run_url") or result.get("dagster_run_url"),
        "mlflow_run_id": report.get("mlflow_run_id") or result.get("mlflow_run_id"),
    }
    return status
