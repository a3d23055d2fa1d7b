"""Stage 1: get each catalog model's weights into the model store (download, link from a package, or train)."""


import dagster as dg

from kiln.recipes import get_recipe
from kiln.recipes.digits_ddpm import DiffusionHyperparameters
from kiln.settings import get_settings
from kiln.sources import fetch, vocoder_source
from kiln.store import StoredModel, fingerprint_of
from pipelines.partitions import catalog_models
from pipelines.resources import KilnWorkspace, MLflowTracking


class RawModelConfig(dg.Config):
    """Hyperparameters for catalog models the pipeline trains (source: train)."""

    hidden_units: int = 128
    epochs: int = 40
    learning_rate: float = 3e-3
    batch_size: int = 64
    seed: int = 0
    # digits-ddpm (the digits-diffusion model): a class-conditional UNet trained with DDPM
    diffusion_steps: int = DiffusionHyperparameters.steps
    diffusion_batch_size: int = DiffusionHyperparameters.batch_size
    diffusion_learning_rate: float = DiffusionHyperparameters.learning_rate
    diffusion_block_channels: list[int] = list(DiffusionHyperparameters.block_channels)
    diffusion_layers_per_block: int = DiffusionHyperparameters.layers_per_block
    diffusion_class_dropout: float = DiffusionHyperparameters.class_dropout  # classifier-free guidance's null class
    diffusion_ema_decay: float = DiffusionHyperparameters.ema_decay
    diffusion_guidance_scale: float = DiffusionHyperparameters.guidance_scale  # default of sampling and the gate
    diffusion_max_seconds: float = DiffusionHyperparameters.max_seconds  # 0: train every step
    hf_token: str | None = None  # default: KILN_HF_TOKEN (prefer it: run config is visible in the UI)
    include_vocoder: bool = False  # text-to-speech: also fetch the vocoder into vocoder/ (see kiln.sources.vocoder_source)


@dg.asset(
    partitions_def=catalog_models,
    group_name="download",
    kinds={"pytorch", "mlflow"},
    description=(
        "The model's weights in Kiln's model store: fetched from its source (hub, path, package), or trained by "
        "its recipe. For a fine-tune, the weights of its base model."
    ),
)
def raw_model(
    context: dg.AssetExecutionContext, config: RawModelConfig, kiln: KilnWorkspace, mlflow: MLflowTracking
) -> dg.Output[StoredModel]:
    entry = kiln.catalog().get(context.partition_key)
    store, tracker = kiln.store(), mlflow.tracker(context)
    if config.include_vocoder:
        vocoder_source(entry, include_vocoder=True)  # refuses models built here (train, finetune) and non-TTS tasks
    if entry.source == "train":
        recipe = get_recipe(entry.id)
        params = recipe_parameters(recipe, config)
        fingerprint = fingerprint_of(recipe.fingerprint_inputs(params))
        model, reused = store.find(entry.name, fingerprint), True
        if model is None or not tracker.run_exists(model.info.get("mlflow_run_id")):
            reused = False
            with tracker.run(run_name=f"train {entry.name}", tags={"kiln.model": entry.name, "kiln.stage": "train"}) as run:
                tracker.log_params({k: str(v) if isinstance(v, tuple) else v for k, v in vars(params).items()}
                                   | {"recipe": recipe.name, "source": entry.source})

                def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
                    tracker.log_metrics(metrics, step=epoch)
                    if hasattr(params, "epochs"):
                        context.log.info(f"{entry.name} epoch {epoch + 1}/{params.epochs}: {metrics}")
                    elif epoch % 25 == 0:  # diffusion: a loss per optimizer step goes to MLflow, a line every 25
                        context.log.info(f"{entry.name} step {epoch + 1}/{params.steps}: {metrics}")

                info = {"source": "train", "recipe": recipe.name, "mlflow_run_id": run.info.run_id}
                with store.stage(entry.name, fingerprint, recipe.task, info) as staging:
                    training = recipe.train(params, staging, on_epoch=on_epoch)
                tracker.log_metrics({k: v for k, v in training.items() if k in ("train_seconds", "train_steps")})
            model = store.find(entry.name, fingerprint)
    else:
        source = kiln.catalog().get(entry.id) if entry.source == "finetune" else entry
        reported = [-1]

        def progress(what: str, done: int, total: int) -> None:
            percent = int(100 * done / max(total, 1))
            if percent >= reported[0] + 10 or done == total:  # every 10%: readable logs for big checkpoints
                reported[0] = percent
                context.log.info(f"{source.name}: {percent}% ({done / 1e6:.1f}/{total / 1e6:.1f} MB) {what}")

        model, reused = fetch(
            source,
            store,
            hf_token=config.hf_token or get_settings().hf_token,
            download_dir=kiln.scratch("downloads"),
            progress=progress,
            include_vocoder=config.include_vocoder,
        )
        if not tracker.run_exists(model.info.get("mlflow_run_id")):
            with tracker.run(run_name=f"fetch {source.name}", tags={"kiln.model": source.name, "kiln.stage": "fetch"}) as run:
                tracker.log_params({"source": source.source, "id": source.id, "sha256": model.sha256, "licence": source.licence})
                tracker.log_metrics({"size_mb": model.size_bytes / 1e6})
            model = store.set_info(model, mlflow_run_id=run.info.run_id)
    assert model is not None
    run_id = model.info["mlflow_run_id"]
    context.log.info(f"{entry.name}: {'reused' if reused else 'built'} version {model.version} at {model.path}")
    return dg.Output(
        model,
        metadata={
            "source": entry.source,
            "model": model.name,
            "version": model.version,
            "files": len(model.files),
            "sha256": model.sha256,
            "size_mb": dg.MetadataValue.float(round(model.size_bytes / 1e6, 3)),
            "path": dg.MetadataValue.path(str(model.path)),
            "reused": reused,
            "mlflow_run_id": run_id,
            "mlflow_run": dg.MetadataValue.url(tracker.run_url(run_id)),
        },
    )


def recipe_parameters(recipe, config: RawModelConfig):
    """The recipe's hyperparameters from the Launchpad config (each recipe reads its own fields)."""
    if recipe.Hyperparameters is DiffusionHyperparameters:
        return DiffusionHyperparameters(
            steps=config.diffusion_steps,
            batch_size=config.diffusion_batch_size,
            learning_rate=config.diffusion_learning_rate,
            block_channels=tuple(config.diffusion_block_channels),
            layers_per_block=config.diffusion_layers_per_block,
            class_dropout=config.diffusion_class_dropout,
            ema_decay=config.diffusion_ema_decay,
            guidance_scale=config.diffusion_guidance_scale,
            max_seconds=config.diffusion_max_seconds,
            seed=config.seed,
        )
    return recipe.Hyperparameters(
        hidden_units=config.hidden_units,
        epochs=config.epochs,
        learning_rate=config.learning_rate,
        batch_size=config.batch_size,
        seed=config.seed,
    )
