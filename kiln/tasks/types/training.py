"""``training``: seed 001's POST /api/training/start as a task. It launches the Dagster job
``user_training`` (through kiln.integrations.dagster_runs, as the ``pipeline`` type does), follows it, and
reports the run's real progress (step, epoch, loss, learning rate, validation metrics) read from the MLflow
run it logs to; cancelling the task terminates the run (its last checkpoint stays, a rerun resumes)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from kiln.errors import InvalidInput
from kiln.settings import get_settings
from kiln.store import ModelStore
from kiln.tasks.context import TaskCancelled, TaskContext
from kiln.tasks.registry import Inputs, TaskType
from kiln.tasks.types.pipeline import RunFailed
from kiln.training.requests import TrainingParameters, resolve_base, store_name

JOB = "user_training"


def check_training(parameters: TrainingParameters, inputs: Inputs) -> None:
    """404 for a base model the store lacks; 422 for a dataset the caller has not, or an unusable output_dir."""
    store_name(parameters.output_dir)
    settings = inputs.files.settings if inputs.files is not None else get_settings()
    resolve_base(parameters.model_type, parameters.base_model, ModelStore(settings.model_store_dir))
    if parameters.model_type != "digits":
        if not parameters.dataset_path:
            what = "an image folder (.zip/.tar of class_name/*.jpg)" if parameters.model_type == "image_classifier" \
                else "your dataset file (CSV/JSONL)"
            raise InvalidInput("dataset_path", f"a {parameters.model_type} trains on {what}: "
                               "upload it with POST /files/upload and give its id or name")
        if parameters.model_type == "image_classifier":
            from kiln.training.image_folders import resolve_dataset

            resolve_dataset(parameters.dataset_path, inputs, settings)
        else:
            inputs.file(parameters.dataset_path, field="dataset_path")


def run_config(parameters: TrainingParameters, context: TaskContext) -> dict[str, Any]:
    base_path = resolve_base(parameters.model_type, parameters.base_model, ModelStore(context.files.settings.model_store_dir))
    dataset_file, dataset_sha = "", ""
    if parameters.model_type == "image_classifier" and parameters.dataset_path:
        from kiln.training.image_folders import resolve_dataset

        dataset_file, dataset_sha = resolve_dataset(parameters.dataset_path, context.inputs, context.files.settings)
    elif parameters.model_type != "digits" and parameters.dataset_path:
        record = context.inputs.file(parameters.dataset_path, field="dataset_path")
        dataset_file, dataset_sha = str(context.files.path(record)), record.sha256
    config = {"task_id": context.task_id, "model_type": parameters.model_type, "base_model": parameters.base_model,
              "base_path": base_path, "dataset_file": dataset_file, "dataset_sha256": dataset_sha,
              "output_name": store_name(parameters.output_dir), "epochs": parameters.epochs,
              "batch_size": parameters.batch_size, "learning_rate": parameters.learning_rate,
              "save_steps": parameters.save_steps, "max_steps": parameters.max_steps, "lora_r": parameters.lora_r,
              "lora_alpha": parameters.lora_alpha, "lora_dropout": parameters.lora_dropout,
              "max_length": parameters.max_length, "gradient_accumulation_steps": parameters.gradient_accumulation_steps,
              "quantization": parameters.quantization, "image_size": parameters.image_size,
              "train_blocks": parameters.train_blocks}
    return {"ops": {"user_trained_model": {"config": config}}}


def run_training(parameters: TrainingParameters, context: TaskContext) -> dict[str, Any]:
    from kiln.integrations.dagster_runs import follow, launch
    from kiln.tracking import Tracker
    from kiln.training.progress import mlflow_progress

    settings = get_settings()  # what the launched Dagster run reads too (its stores and MLflow)
    config = run_config(parameters, context)
    run = launch(settings, JOB, None, config, {"kiln/task_id": context.task_id}, steps_planned=2)
    context.progress(1, f"Dagster run {run.run_id} launched ({run.via})", force=True, dagster_run_id=run.run_id,
                     dagster_run_url=run.url)
    tracker = Tracker(settings.tracking_uri, settings.artifact_root, settings.mlflow_experiment, settings.mlflow_ui_url)
    last: dict[str, Any] = {}

    def report(launched) -> None:
        found = mlflow_progress(tracker, context.task_id)
        if found is None:
            context.progress(2, f"Dagster run {launched.status.lower()}: preparing", dagster_run_id=launched.run_id)
            return
        last.update(found)
        total = found.get("total_steps") or 0
        percent = 2 + 96 * found["current_step"] / total if total else 2
        context.progress(min(98.0, percent), f"step {found['current_step']} of {total or '?'}",
                         dagster_run_id=launched.run_id, dagster_run_url=launched.url, **found)

    cancelled = follow(run, context, report)
    final = mlflow_progress(tracker, context.task_id) or last
    if not cancelled and final:
        context.progress(99, f"step {final.get('current_step')} of {final.get('total_steps')}: storing the model",
                         force=True, dagster_run_id=run.run_id, dagster_run_url=run.url, **final)
    result = {"dagster_run_id": run.run_id, "dagster_run_url": run.url, "status": run.status, "via": run.via,
              "mlflow_run_id": final.get("mlflow_run_id"), "model_name": config["ops"]["user_trained_model"]["config"]["output_name"],
              "current_step": final.get("current_step"), "total_steps": final.get("total_steps"),
              "loss": final.get("loss"), "metrics": final.get("metrics", {})}
    if cancelled and run.status != "SUCCESS":
        raise TaskCancelled(f"Dagster run {run.run_id} was terminated; its last checkpoint is kept")
    if run.status != "SUCCESS":
        tail = "; ".join(run.log[-5:])
        raise RunFailed(f"Dagster run {run.run_id} ended {run.status}" + (f": {tail}" if tail else "") + f" (see {run.url})")
    stored = ModelStore(settings.model_store_dir).latest(result["model_name"])
    if stored is not None:
        result.update(model_version=stored.version, model_path_in_store=f"{stored.name}/{stored.version}",
                      registered_version=stored.info.get("registry_version"), champion_gate=stored.info.get("champion_gate"),
                      served=bool(stored.info.get("bento_model")))
    return result


class MergeParameters(BaseModel):
    """``llm_merge``: POST /api/llm-finetuning/merge as a task."""

    task_id: str = Field(min_length=1, max_length=64, description="A completed LoRA/QLoRA fine-tuning task")
    output_path: str = Field(min_length=1, max_length=255, description="A model-store name (a path's last segment is taken)")


def check_merge(parameters: MergeParameters, inputs: Inputs) -> None:
    store_name(parameters.output_path, field="output_path")


def run_merge(parameters: MergeParameters, context: TaskContext) -> dict[str, Any]:
    """Fold the adapter into its base, store the result under the name, register it in MLflow with its lineage."""
    from kiln.tracking import Tracker
    from kiln.training.llm import finished_adapter, merge

    settings = get_settings()
    store = ModelStore(settings.model_store_dir)
    source = context.records.visible(parameters.task_id, context.owner_id, context.inputs.see_all)
    adapter = finished_adapter(source, store)  # the caller's own completed fine-tuning, else 404/409
    context.progress(5, f"merging {adapter.name}/{adapter.version} into its base {adapter.info.get('base')}", force=True)
    tracker = Tracker(settings.tracking_uri, settings.artifact_root, settings.mlflow_experiment, settings.mlflow_ui_url)
    return {"source_task_id": parameters.task_id, **merge(adapter, parameters.output_path, store, tracker)}


TYPES = [TaskType(
    "training", "Train a model over HTTP (seed 001): digits, a LoRA text classifier on a stored encoder, an "
    "EfficientNet-Lite0 image classifier on an image folder, or LoRA/QLoRA on a causal LM, as a Dagster run of the "
    "job user_training", TrainingParameters, run_training, check_training),
    TaskType("llm_merge", "Merge a finished LoRA fine-tuning's adapter into its base (seed 001's "
             "/api/llm-finetuning/merge): a new stored model, registered in MLflow with its lineage",
             MergeParameters, run_merge, check_merge)]
