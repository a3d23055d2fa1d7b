"""Seed 001's training shapes, plus what makes them traceable (the Dagster and MLflow runs, the stored name)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class TrainingStarted(BaseModel):
    task_id: str
    status: str = Field(description="The task's status (pending until a worker takes it)")
    model_name: str = Field(description="The model-store name the result is stored under (output_dir's last segment)")
    message: str
    status_url: str


class TrainingStatus(BaseModel):
    task_id: str
    status: str = Field(description="pending | scheduled | running | completed | failed | cancelled")
    progress: float = Field(description="0-100")
    current_epoch: int = 0
    total_epochs: int | None = None
    current_step: int = 0
    total_steps: int | None = None
    loss: float | None = None
    learning_rate: float | None = None
    metrics: dict[str, float] = Field(default_factory=dict, description="accuracy, f1_score on the validation split")
    message: str | None = None
    error: str | None = None
    model_type: str | None = None
    base_model: str | None = None
    model_name: str | None = None
    model_version: str | None = None
    registered_version: str | None = Field(None, description="Its version in the MLflow registry once finished")
    champion_gate: str | None = Field(None, description="What the champion gate decided")
    served: bool | None = Field(None, description="Servable by model_name (/predict, /api/image-recognition/classify)")
    dagster_run_id: str | None = None
    dagster_run_url: str | None = None
    mlflow_run_id: str | None = None


class TrainingStopped(BaseModel):
    task_id: str
    status: str = Field(description="stopping (the run is being terminated) or cancelled")
    message: str


class LlmTest(BaseModel):
    task_id: str = Field(min_length=1, max_length=64)
    prompt: str = Field(min_length=1, max_length=20_000)
    max_tokens: int = Field(256, ge=1, le=4096)
    temperature: float = Field(0.0, ge=0, le=5, description="0: greedy")
    seed: int = Field(0, ge=0, le=2**31 - 1)


class LlmTestAnswer(BaseModel):
    response: str
    task_id: str
    model_name: str


class MergeRequest(BaseModel):
    task_id: str = Field(min_length=1, max_length=64)
    output_path: str = Field(min_length=1, max_length=255, description="A model-store name (a path's last segment is taken)")


class MergeStarted(BaseModel):
    task_id: str = Field(description="The llm_merge task; its result names the stored model and its MLflow version")
    source_task_id: str = Field(description="The fine-tuning whose adapter is merged")
    status: str
    model_name: str = Field(description="The model-store name the merged model is stored under")
    message: str
    status_url: str
