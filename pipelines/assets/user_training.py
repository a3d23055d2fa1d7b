"""Stage: a training a user started over HTTP (POST /api/training/start). The Kiln task that launched the
run passes the resolved request as config; the asset trains it (kiln/training/trainers.py), logs every step
to MLflow (tagged with the task id, which is how the task reads progress back), checkpoints, and stores the
result in the model store under the requested name."""

import time
from dataclasses import asdict
from typing import Literal

import dagster as dg

from kiln.store import fingerprint_of
from pipelines.resources import KilnWorkspace, MLflowTracking

TASK_TAG = "kiln.task_id"
STORE_TASKS = {"digits": "classification", "text_classifier": "text-classification", "causal_lm": "text-generation"}


class UserTrainingConfig(dg.Config):
    """One training request, resolved by the Kiln task (base model path, dataset file on disk)."""

    task_id: str = ""  # the Kiln task that follows this run (its MLflow run carries it as a tag)
    model_type: Literal["digits", "text_classifier", "causal_lm"] = "digits"
    base_model: str = "digits-mlp"
    base_path: str = ""  # the base model's folder in the model store ("" for a recipe)
    dataset_file: str = ""  # the dataset's file in the files store ("" for digits)
    dataset_sha256: str = ""
    output_name: str = "digits-trained"  # a model-store name
    epochs: int = 3
    batch_size: int = 32
    learning_rate: float = 1e-3
    save_steps: int = 0  # 0: no intermediate checkpoints
    max_steps: int = 0  # 0: every batch of every epoch
    lora_r: int = 8  # the LoRA settings: text_classifier uses the measured MiniLM recipe, causal_lm these
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    max_length: int = 512
    gradient_accumulation_steps: int = 1
    quantization: Literal["none", "4bit"] = "none"  # causal_lm: "4bit" is QLoRA


@dg.asset(
    group_name="train",
    kinds={"pytorch", "mlflow"},
    description="A model trained on request (POST /api/training/start): digits MLP or a LoRA text classifier, "
                "stored under the requested model-store name.",
    check_specs=[dg.AssetCheckSpec("beats_chance", asset="user_trained_model", blocking=True,
                                   description="The trained model beats chance on its validation split.")],
)
def user_trained_model(
    context: dg.AssetExecutionContext, config: UserTrainingConfig, kiln: KilnWorkspace, mlflow: MLflowTracking
):
    from kiln.training.trainers import TrainingJob, planned_steps, train

    job = TrainingJob(**config.model_dump(exclude={"task_id", "dataset_sha256", "output_name"}))
    fingerprint = fingerprint_of({"recipe": "user-training", "version": "1", "job": asdict(job),
                                  "data": config.dataset_sha256})
    checkpoints = kiln.scratch("checkpoints") / "user-training" / config.output_name / fingerprint[:12]
    tracker = mlflow.tracker(context)
    total = planned_steps(job)
    tags = {TASK_TAG: config.task_id, "kiln.stage": "user-training", "kiln.model": config.output_name,
            "kiln.base": config.base_model}
    with tracker.run(run_name=f"train {config.output_name}", tags=tags) as run:
        tracker.log_params(asdict(job) | {"total_steps": total, "total_epochs": job.epochs,
                                          "dataset_sha256": config.dataset_sha256})

        def on_step(step: int, metrics: dict[str, float]) -> None:
            # Per-step metrics are progress, not results: a busy tracking store (SQLite, locked by a reader of
            # the same run) gets a few tries, then the step's point is skipped; the training goes on.
            for attempt in range(3):
                try:
                    tracker.log_metrics({**metrics, "step": float(step)}, step=step)
                    return
                except Exception as exc:  # noqa: BLE001  (MLflow wraps the store's errors in several types)
                    if attempt == 2:
                        context.log.warning(f"step {step}'s metrics were not logged: {type(exc).__name__}: {exc}")
                    else:
                        time.sleep(0.2 * (attempt + 1))

        def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            tracker.log_metrics(metrics, step=epoch)
            context.log.info(f"{config.output_name} epoch {epoch + 1}/{job.epochs}: {metrics}")

        info = {"source": "user-training", "model_type": job.model_type, "base": job.base_model, "base_path": job.base_path,
                "dataset_sha256": config.dataset_sha256, "mlflow_run_id": run.info.run_id, "kiln_task_id": config.task_id}
        store = kiln.store()
        with store.stage(config.output_name, fingerprint, STORE_TASKS[job.model_type], info) as staging:
            metrics = train(job, staging, on_step, on_epoch, checkpoints, log=context.log.info)
        tracker.log_metrics({k: v for k, v in metrics.items() if k not in ("steps",)})
    model = store.find(config.output_name, fingerprint)
    assert model is not None
    model = store.set_info(model, training=metrics)
    yield dg.Output(
        model,
        metadata={
            "model": model.name,
            "version": model.version,
            "model_type": job.model_type,
            "base": job.base_model,
            "steps": int(metrics.get("steps", total)),
            "resumed_from_step": int(metrics.get("resumed_from_step", 0)),
            "accuracy": dg.MetadataValue.float(round(metrics.get("accuracy", 0.0), 4)),
            "f1_score": dg.MetadataValue.float(round(metrics.get("f1_score", 0.0), 4)),
            "train_seconds": dg.MetadataValue.float(round(metrics.get("train_seconds", 0.0), 2)),
            "path": dg.MetadataValue.path(str(model.path)),
            "kiln_task_id": config.task_id,
            "mlflow_run_id": run.info.run_id,
            "mlflow_run": dg.MetadataValue.url(tracker.run_url(run.info.run_id)),
        },
    )
    if job.model_type == "causal_lm":  # no labels: the gate is that the loss fell
        first, last = metrics.get("first_train_loss", 0.0), metrics.get("final_train_loss", 0.0)
        yield dg.AssetCheckResult(check_name="beats_chance", passed=last < first,
                                  metadata={"first_train_loss": first, "final_train_loss": last},
                                  description=f"training loss {first:.4f} -> {last:.4f}")
        return
    accuracy, chance = metrics.get("accuracy", 0.0), 1.0 / (10 if job.model_type == "digits" else 2)
    yield dg.AssetCheckResult(check_name="beats_chance", passed=accuracy > chance,
                              metadata={"accuracy": accuracy, "chance": chance},
                              description=f"validation accuracy {accuracy:.4f} against chance {chance:.2f}")
