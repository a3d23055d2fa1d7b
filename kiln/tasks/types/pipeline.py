"""``pipeline``: a Dagster job for one catalog model, as a task. It launches the run (GraphQL when the
Dagster webserver runs, else in a process of its own), follows it (progress = steps ended / planned),
ends with the run's outcome, and cancelling the task terminates the run."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from kiln.catalog import load_catalog
from kiln.errors import InvalidInput, KilnError
from kiln.settings import get_settings
from kiln.tasks.context import TaskCancelled, TaskContext
from kiln.tasks.registry import TaskType

# The partitioned jobs of the code location (pipelines/jobs.py) and the steps each runs for most models.
JOBS = {"model_pipeline": 8, "training": 3, "export": 1, "evaluate": 2, "retrain_scaling_predictor": 1}
UNPARTITIONED = {"retrain_scaling_predictor"}  # jobs over Kiln's own records, not one catalog model


class RunFailed(KilnError):
    status_code = 500
    code = "PIPELINE_FAILED"


class PipelineParameters(BaseModel):
    model: str | None = Field(None, min_length=1, max_length=63,
                              description="A catalog model (assets/catalog.yaml); not for retrain_scaling_predictor")
    job: Literal["model_pipeline", "training", "export", "evaluate", "retrain_scaling_predictor"] = "model_pipeline"
    run_config: dict[str, Any] = Field(default_factory=dict, description="Dagster run config (the Launchpad's YAML as JSON)")


def check_model(parameters: PipelineParameters, inputs: Any) -> None:
    if parameters.job in UNPARTITIONED:
        if parameters.model is not None:
            raise InvalidInput("parameters.model", f"the {parameters.job} job is not per model: leave model out")
        return
    if parameters.model is None:
        raise InvalidInput("parameters.model", f"the {parameters.job} job needs a catalog model")
    names = load_catalog(get_settings().catalog_file).names()
    if parameters.model not in names:
        raise InvalidInput("parameters.model", f"not a catalog model; the catalog has {', '.join(names)}")


def run_pipeline(parameters: PipelineParameters, context: TaskContext) -> dict[str, Any]:
    from kiln.integrations.dagster_runs import follow, launch

    settings = get_settings()
    run = launch(settings, parameters.job, parameters.model, parameters.run_config,
                 {"kiln/task_id": context.task_id}, steps_planned=JOBS[parameters.job])
    context.progress(1, f"Dagster run {run.run_id} launched ({run.via})", force=True, dagster_run_id=run.run_id)
    cancelled = follow(run, context)
    result = {"dagster_run_id": run.run_id, "dagster_run_url": run.url, "status": run.status, "via": run.via,
              "job": parameters.job, "model": parameters.model, "steps_ended": run.steps_ended}
    if cancelled and run.status != "SUCCESS":  # a run that finished before the stop keeps its result
        raise TaskCancelled(f"Dagster run {run.run_id} was terminated")
    if run.status != "SUCCESS":
        tail = "; ".join(run.log[-5:])
        raise RunFailed(f"Dagster run {run.run_id} ended {run.status}" + (f": {tail}" if tail else "") +
                        f" (see {run.url})")
    return result


TYPES = [TaskType("pipeline", "Run a Dagster job: model_pipeline, training, export, evaluate (for a catalog model) or retrain_scaling_predictor",
                  PipelineParameters, run_pipeline, check_model)]
