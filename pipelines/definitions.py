"""Assembles Kiln's Dagster code location. Resources are built from Kiln's settings (KILN_* variables)."""

from __future__ import annotations

import dagster as dg

from kiln.settings import Settings, get_settings
from pipelines.assets import datasets, evaluation, models, optimization, package, registry, scaling, training, user_training
from pipelines.jobs import (
    catalog_partitions_sensor,
    champion_bento_sensor,
    evaluation_job,
    export_job,
    model_pipeline_job,
    nightly_reevaluation,
    package_job,
    scaling_predictor_job,
    scaling_retraining,
    training_job,
    user_training_job,
)
from pipelines.resources import BentoModelStore, KilnWorkspace, MLflowTracking

ASSET_MODULES = [models, datasets, training, optimization, evaluation, registry, package, scaling, user_training]


def build_resources(settings: Settings) -> dict:
    return {
        "kiln": KilnWorkspace(
            workspace_dir=str(settings.workspace),
            catalog_file=str(settings.catalog_file),
            model_store_dir=str(settings.model_store_dir),
            records_url=settings.records_database_url,
        ),
        "mlflow": MLflowTracking(
            tracking_uri=settings.tracking_uri,
            artifact_root=str(settings.artifact_root),
            experiment=settings.mlflow_experiment,
            ui_url=settings.mlflow_ui_url,
            records_url=settings.records_database_url,
        ),
        "bentoml": BentoModelStore(),
        "io_manager": dg.FilesystemIOManager(base_dir=str(settings.dagster_storage_dir)),
    }


def build_executor(settings: Settings):
    """Scale-out: with a Celery broker set, a run's steps go to Celery workers (`kiln pipeline-worker`, on
    any machine that shares the Dagster storage and the stores); otherwise Dagster's default."""
    if not settings.dagster_celery_broker:
        return None
    from dagster_celery import celery_executor

    return celery_executor.configured({"broker": settings.dagster_celery_broker, "backend": "rpc://"})


defs = dg.Definitions(
    assets=dg.load_assets_from_modules(ASSET_MODULES),
    asset_checks=dg.load_asset_checks_from_modules(ASSET_MODULES),
    jobs=[model_pipeline_job, training_job, export_job, evaluation_job, package_job, scaling_predictor_job,
          user_training_job],
    schedules=[nightly_reevaluation, scaling_retraining],
    sensors=[catalog_partitions_sensor, champion_bento_sensor],
    resources=build_resources(get_settings()),
    executor=build_executor(get_settings()),
)
