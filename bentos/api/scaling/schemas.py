"""Seed 002's ML Controller shapes, plus what makes them checkable (rates, the mode, judged counts)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class Prediction(BaseModel):
    service: str = Field(description="A served model (its instance pool)")
    current_replicas: int = Field(description="Instances at the last traffic sample")
    predicted_replicas: int
    confidence: float = Field(ge=0, le=1, description="0 when there is no forecast (the reason says why)")
    reason: str
    prediction_horizon: str = Field(examples=["5m"])
    predicted_request_rate: float | None = None
    current_request_rate: float | None = None
    capacity_rps_per_instance: float | None = Field(None, description="Measured requests/s of one busy instance")


class Predictions(BaseModel):
    timestamp: str
    predictions: list[Prediction]
    model_version: str | None = Field(None, description="Registry version of the champion scaling predictor")
    model_accuracy: float | None = Field(None, description="Its instance-count accuracy on the held-out tail")
    mode: Literal["off", "preview", "apply"] = Field(description="KILN_PREDICTIVE_SCALING")


class Decision(BaseModel):
    timestamp: str
    service: str | None
    action: str | None
    from_replicas: int | None
    to_replicas: int | None
    trigger: str | None = Field(description="load | idle | manual | demand | ml_prediction")
    reason: str | None = None
    applied: bool = Field(True, description="false: a preview decision, recorded but not acted on")
    metrics: dict[str, Any] = Field(default_factory=dict)


class History(BaseModel):
    history: list[Decision]
    total_decisions: int
    accuracy_rate: float | None = Field(description="Share of judged ml_prediction decisions that were right")
    judged_predictions: int
    hours: int


class Retrain(BaseModel):
    model_type: Literal["scaling_predictor"] = "scaling_predictor"
    training_hours: int = Field(168, ge=1, le=24 * 90)
    force_retrain: bool = False


class RetrainStarted(BaseModel):
    job_id: str | None = Field(description="The task's id (GET /tasks/{id}); null when nothing needed retraining")
    status: Literal["started", "up_to_date"]
    estimated_duration: str | None = Field(description="The last training's measured duration; null before the first")
    message: str
    task_url: str | None = None
