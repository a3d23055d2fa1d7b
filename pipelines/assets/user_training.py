"""Stage: a training a user started over HTTP (POST /api/training/start). The Kiln task that launched the
run passes the resolved request as config; the asset trains it (kiln/training/trainers.py), logs every step
to MLflow (tagged with the task id, which is how the task reads progress back), checkpoints, and stores the
result in the model store under the requested name. ``user_registered_model`` then registers the candidate in
MLflow with its validation accuracy, and when the champion gate lets it through, makes it servable by name
(BentoML's model store, which the gateway's /predict and vision routes serve from)."""

import time
from dataclasses import asdict
from typing import Literal

import dagster as dg

from kiln.store import fingerprint_of
from pipelines.resources import BentoModelStore, KilnWorkspace, MLflowTracking

TASK_TAG = "kiln.task_id"
STORE_TASKS = {"digits": "classification", "text_classifier": "text-classification", "causal_lm": "text-generation",
               "image_classifier": "image-classification"}
PRIMARY_METRIC = "accuracy"  # on the validation split the training held out


class UserTrainingConfig(dg.Config):
    """One training request, resolved by the Kiln task (base model path, dataset file on disk)."""

    task_id: str = ""  # the Kiln task that follows this run (its MLflow run carries it as a tag)
    model_type: Literal["digits", "text_classifier", "causal_lm", "image_classifier"] = "digits"
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
    image_size: int = 224  # image_classifier: input side; train_blocks: how many last blocks also train
    train_blocks: int = 0


@dg.asset(
    group_name="train",
    kinds={"pytorch", "mlflow"},
    description="A model trained on request (POST /api/training/start): digits MLP, a LoRA text classifier, "
                "an EfficientNet-Lite0 image classifier or a LoRA causal LM, stored under the requested model-store name.",
    check_specs=[dg.AssetCheckSpec("beats_chance", asset="user_trained_model", blocking=True,
                                   description="The trained model beats chance on its validation split.")],
)
def user_trained_model(
    context: dg.AssetExecutionContext, config: UserTrainingConfig, kiln: KilnWorkspace, mlflow: MLflowTracking
):
    from dataclasses import replace
    from pathlib import Path

    from kiln.training.trainers import TrainingJob, planned_steps, train

    job = TrainingJob(**config.model_dump(exclude={"task_id", "dataset_sha256", "output_name"}))
    fingerprint = fingerprint_of({"recipe": "user-training", "version": "1", "job": asdict(job),
                                  "data": config.dataset_sha256})
    if job.model_type == "image_classifier" and Path(job.dataset_file).is_file():  # an uploaded archive: unpack once
        from kiln.settings import get_settings
        from kiln.training.image_folders import ArchiveLimits, extract_archive

        unpacked = kiln.scratch("image-datasets") / (config.dataset_sha256[:16] or fingerprint[:16])
        limits = ArchiveLimits(max_total_bytes=get_settings().training_archive_max_bytes)
        job = replace(job, dataset_file=str(extract_archive(Path(job.dataset_file), unpacked, limits)))
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
    classes = {"digits": 10, "image_classifier": int(metrics.get("classes", 2))}.get(job.model_type, 2)
    accuracy, chance = metrics.get("accuracy", 0.0), 1.0 / classes
    yield dg.AssetCheckResult(check_name="beats_chance", passed=accuracy > chance,
                              metadata={"accuracy": accuracy, "chance": chance},
                              description=f"validation accuracy {accuracy:.4f} against chance {chance:.2f}")


@dg.asset(
    group_name="train",
    kinds={"mlflow", "bentoml"},
    description="The trained model as a candidate in the MLflow registry (primary metric: validation accuracy); "
                "when the champion gate lets it through, it is servable by its name (BentoML's model store).",
    check_specs=[dg.AssetCheckSpec("champion_gate", asset="user_registered_model",
                                   description="The candidate is the champion of its name (it beat the previous one "
                                               "on validation accuracy, or there was none).")],
)
def user_registered_model(context: dg.AssetExecutionContext, user_trained_model, kiln: KilnWorkspace,
                          mlflow: MLflowTracking, bentoml: BentoModelStore):
    from kiln.engines import engine_classes
    from pipelines.assets.registry import mark_champion

    model = user_trained_model
    store = kiln.store()
    if model.task not in engine_classes():  # a causal LM's adapter: POST /api/llm-finetuning/merge registers it
        yield dg.Output({"registered": False}, metadata={"reason": f"{model.task} is registered when merged"})
        yield dg.AssetCheckResult(check_name="champion_gate", passed=True,
                                  description=f"not gated: a {model.task} adapter is registered by its merge")
        return
    metrics = model.info.get("training", {})
    registration = mlflow.tracker(context).register(model, model.info["mlflow_run_id"], PRIMARY_METRIC,
                                                    float(metrics.get(PRIMARY_METRIC, 0.0)))
    context.log.info(f"{model.name}: {registration.reason}")
    mark_champion(store, model, registration)
    served = ""
    if registration.champion_version == registration.version:
        served, _ = bentoml.import_champion(model, registration, context.run.run_id, context.run.run_id)
    model = store.set_info(store.find(model.name, model.fingerprint) or model, registry_version=registration.version,
                           champion_gate=registration.reason, bento_model=served)
    yield dg.Output(
        {"registered": True, "version": registration.version, "champion_version": registration.champion_version,
         "bento_model": served},
        metadata={"registered_model": model.name, "version": registration.version,
                  "champion_version": registration.champion_version, "reason": registration.reason,
                  "bento_model": served or "(not served: not the champion)"},
    )
    yield dg.AssetCheckResult(check_name="champion_gate", passed=registration.champion_version == registration.version,
                              metadata={"reason": registration.reason}, description=registration.reason)
