"""Stage: fine-tuning. Catalog models with ``source: finetune`` get a LoRA (or QLoRA) adapter trained on
their dataset, merged into the base; every other model passes through unchanged as the candidate."""


from dataclasses import asdict
from typing import Literal

import dagster as dg

from kiln.store import StoredModel, fingerprint_of
from pipelines.partitions import catalog_models
from pipelines.resources import KilnWorkspace, MLflowTracking


class FinetuneConfig(dg.Config):
    """LoRA hyperparameters (defaults: the measured MiniLM recipe, about 4 minutes on 2 cores)."""

    rank: int = 8
    alpha: int = 16
    dropout: float = 0.1
    target_modules: list[str] = ["query", "value"]
    modules_to_save: list[str] = ["classifier", "pooler"]
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    epochs: int = 2
    batch_size: int = 32
    max_length: int = 128
    max_steps: int = 0  # 0: every batch of every epoch
    seed: int = 0
    quantization: Literal["none", "4bit"] = "none"  # "4bit": QLoRA on a bitsandbytes nf4/fp4 base
    quant_type: Literal["nf4", "fp4"] = "nf4"
    allow_quantization_fallback: bool = False
    checkpoint_every: int = 50


@dg.asset(
    partitions_def=catalog_models,
    group_name="train",
    kinds={"pytorch", "mlflow"},
    description=(
        "The candidate model: for `source: finetune` entries, LoRA/QLoRA (peft, bitsandbytes) on the base model "
        "with the validated dataset, adapter merged; for every other entry, the raw model as it is."
    ),
)
def finetuned_model(
    context: dg.AssetExecutionContext,
    config: FinetuneConfig,
    raw_model: StoredModel,
    sentiment_dataset: dict,
    kiln: KilnWorkspace,
    mlflow: MLflowTracking,
) -> dg.Output[StoredModel]:
    from kiln.finetune import LoraHyperparameters, fingerprint_inputs

    entry = kiln.catalog().get(context.partition_key)
    tracker = mlflow.tracker(context)
    if entry.source != "finetune":
        return dg.Output(
            raw_model,
            metadata={"fine_tuned": False, "reason": f"source '{entry.source}' is served as it is", "version": raw_model.version},
        )
    if entry.dataset != sentiment_dataset["name"]:
        raise dg.Failure(f"'{entry.name}' trains on dataset '{entry.dataset}', which this code location does not build")
    params = LoraHyperparameters(**{k: tuple(v) if isinstance(v, list) else v for k, v in config.model_dump().items()})
    fingerprint = fingerprint_of(fingerprint_inputs(raw_model.sha256, sentiment_dataset["fingerprint"], params))
    store = kiln.store()
    model, reused = store.find(entry.name, fingerprint), True
    if model is None or not tracker.run_exists(model.info.get("mlflow_run_id")):
        reused = False
        model = _train(context, entry, params, fingerprint, raw_model, sentiment_dataset, kiln, tracker)
    facts = model.info.get("finetune", {})
    run_id = model.info["mlflow_run_id"]
    return dg.Output(
        model,
        metadata={
            "fine_tuned": True,
            "reused": reused,
            "version": model.version,
            "base": f"{raw_model.name} {raw_model.version}",
            "quantization": facts.get("quantization", ""),
            "trainable_share_percent": dg.MetadataValue.float(round(100 * facts.get("trainable_share", 0.0), 3)),
            "trainable_parameters": int(facts.get("trainable_parameters", 0)),
            "validation_accuracy": dg.MetadataValue.float(round(facts.get("validation_accuracy", 0.0), 4)),
            "train_seconds": dg.MetadataValue.float(round(facts.get("train_seconds", 0.0), 1)),
            "steps": int(facts.get("steps", 0)),
            "sha256": model.sha256,
            "mlflow_run": dg.MetadataValue.url(tracker.run_url(run_id)),
        },
    )


def _train(context, entry, params, fingerprint, raw_model, dataset, kiln, tracker) -> StoredModel:
    from kiln.datasets import load_saved_dataset
    from kiln.finetune import clear_checkpoint, finetune

    data = load_saved_dataset(dataset["path"])
    checkpoints = kiln.scratch("checkpoints") / entry.name / fingerprint[:12]
    tags = {"kiln.model": entry.name, "kiln.stage": "finetune", "kiln.base": raw_model.name}
    with tracker.run(run_name=f"finetune {entry.name}", tags=tags) as run:
        tracker.log_params(asdict(params) | {"base_sha256": raw_model.sha256, "dataset": dataset["name"], "train_rows": len(data["train"])})

        def on_step(step: int, metrics: dict[str, float]) -> None:
            tracker.log_metrics(metrics, step=step)
            if "validation_accuracy" in metrics or step % 25 == 0:
                context.log.info(f"{entry.name} step {step}: {metrics}")

        info = {"source": "finetune", "base": raw_model.name, "base_sha256": raw_model.sha256, "dataset": dataset["name"],
                "dataset_path": dataset["path"], "mlflow_run_id": run.info.run_id}
        with kiln.store().stage(entry.name, fingerprint, entry.task, info) as staging:
            result = finetune(
                "sequence-classification",
                raw_model.path,
                staging,
                params,
                data["train"]["text"],
                data["train"]["label"],
                labels=dataset["labels"],
                validation=(data["validation"]["text"], data["validation"]["label"]),
                checkpoint_dir=checkpoints,
                on_step=on_step,
                log=context.log.info,
            )
            tracker.log_metrics(result.metrics)
            mlflow_tags = {"kiln.quantization": result.quantization, "kiln.resumed_from_step": str(result.resumed_from_step)}
            import mlflow

            mlflow.set_tags(mlflow_tags)
    clear_checkpoint(checkpoints)
    model = kiln.store().find(entry.name, fingerprint)
    assert model is not None
    return kiln.store().set_info(model, finetune={**result.metrics, "quantization": result.quantization, "resumed_from_step": result.resumed_from_step})
