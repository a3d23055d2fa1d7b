"""Jobs that group the assets for the Dagster UI, the nightly re-evaluation schedule, and the sensors."""


import dagster as dg

from pipelines.partitions import CATALOG_PARTITIONS, catalog_models
from pipelines.resources import BentoModelStore, KilnWorkspace

MODEL_ASSETS = dg.AssetSelection.assets(
    "raw_model", "sentiment_dataset", "finetuned_model", "optimized_model", "evaluation", "evaluation_report",
    "registered_model", "bento_model",
)

model_pipeline_job = dg.define_asset_job(
    "model_pipeline",
    selection=MODEL_ASSETS,
    partitions_def=catalog_models,
    description=(
        "The whole graph for one catalog model: download (or train), validate data, fine-tune where the catalog "
        "says so, optimize (ONNX, int8), evaluate with a report notebook, register (champion gate) and make the "
        "champion servable. `kiln pipeline` runs it for every catalog model."
    ),
)

training_job = dg.define_asset_job(
    "training",
    selection=dg.AssetSelection.assets("raw_model", "sentiment_dataset", "finetuned_model"),
    partitions_def=catalog_models,
    description=(
        "Download the base model, validate the dataset (blocking great-expectations checks) and fine-tune it with "
        "LoRA/QLoRA; hyperparameters are in the Launchpad under ops.finetuned_model.config."
    ),
)

export_job = dg.define_asset_job(
    "export",
    selection=dg.AssetSelection.assets("optimized_model"),
    partitions_def=catalog_models,
    description="Export the candidate to ONNX and int8, and benchmark both against eager fp32 (metadata table, MLflow).",
)

evaluation_job = dg.define_asset_job(
    "evaluate",
    selection=dg.AssetSelection.assets("evaluation", "evaluation_report"),
    partitions_def=catalog_models,
    description="Re-evaluate the candidate on its held-out split and re-render the papermill report notebook.",
)

package_job = dg.define_asset_job(
    "package",
    selection=dg.AssetSelection.assets("bento"),
    description="`bentoml build` the serving bundle with every current champion (run by the champion sensor).",
)

user_training_job = dg.define_asset_job(
    "user_training",
    selection=dg.AssetSelection.assets("user_trained_model", "user_registered_model"),
    description="A training started over HTTP (POST /api/training/start, a Kiln task): config under "
                "ops.user_trained_model.config; progress in MLflow (tag kiln.task_id) and the task's status. The result is "
                "registered in MLflow and, past the champion gate, served by its name.",
)


scaling_predictor_job = dg.define_asset_job(
    "retrain_scaling_predictor",
    selection=dg.AssetSelection.assets("scaling_predictor"),
    description=(
        "Train the scaling predictor on the served models' recorded traffic (Kiln's records database), evaluate it "
        "on the held-out tail, register it with the champion gate. POST /ml/model/retrain runs it as a task."
    ),
)


@dg.schedule(
    job=scaling_predictor_job,
    cron_schedule="15 * * * *",
    default_status=dg.DefaultScheduleStatus.STOPPED,  # opt in from the UI (Automation tab)
    description="Retrain the scaling predictor every hour on the newest traffic. Off by default.",
)
def scaling_retraining(context: dg.ScheduleEvaluationContext):
    return dg.RunRequest(run_key=f"scaling-{context.scheduled_execution_time:%Y-%m-%dT%H}")


@dg.schedule(
    job=evaluation_job,
    cron_schedule="0 2 * * *",
    default_status=dg.DefaultScheduleStatus.STOPPED,  # opt in from the UI (Automation tab)
    description="Nightly re-evaluation of every catalog model at 02:00. Off by default.",
)
def nightly_reevaluation(context: dg.ScheduleEvaluationContext):
    for name in context.instance.get_dynamic_partitions(CATALOG_PARTITIONS):
        yield dg.RunRequest(run_key=f"{context.scheduled_execution_time:%Y-%m-%d}-{name}", partition_key=name)


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Adds a partition for every catalog model that has none, so new catalog entries appear in the UI.",
)
def catalog_partitions_sensor(context: dg.SensorEvaluationContext, kiln: KilnWorkspace):
    names = kiln.catalog().names()
    existing = set(context.instance.get_dynamic_partitions(CATALOG_PARTITIONS))
    missing = [name for name in names if name not in existing]
    if not missing:
        return dg.SkipReason("every catalog model has its partition")
    return dg.SensorResult(dynamic_partitions_requests=[catalog_models.build_add_request(missing)])


@dg.sensor(
    job=package_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Builds a new bento when the set of champion models (BentoML store, from the registry) changes.",
)
def champion_bento_sensor(context: dg.SensorEvaluationContext, bentoml: BentoModelStore):
    if not bentoml.champions():
        return dg.SkipReason("no champion model yet")
    digest = bentoml.champion_digest()
    if context.cursor == digest:
        return dg.SkipReason(f"champions unchanged ({digest})")
    context.update_cursor(digest)
    # run_key: one build per set of champions, even if the cursor is reset
    return dg.RunRequest(run_key=f"champions-{digest}", tags={"kiln.champions": digest})
