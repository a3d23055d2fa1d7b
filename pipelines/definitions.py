"""Assembles Kiln's Dagster code location. Resources are built from Kiln's settings (KILN_* variables)."""

from __future__ import annotations

import dagster as dg

from kiln.settings import Settings, get_settings
from pipelines.assets import evaluation, models, registry
from pipelines.jobs import model_pipeline_job
from pipelines.resources import BentoModelStore, KilnWorkspace, MLflowTracking


def build_resources(settings: Settings) -> dict:
    return {
        "kiln": KilnWorkspace(
            workspace_dir=str(settings.workspace),
            catalog_file=str(settings.catalog_file),
            model_store_dir=str(settings.model_store_dir),
        ),
        "mlflow": MLflowTracking(
            tracking_uri=settings.tracking_uri,
            artifact_root=str(settings.artifact_root),
            experiment=settings.mlflow_experiment,
            ui_url=settings.mlflow_ui_url,
        ),
        "bentoml": BentoModelStore(),
        "io_manager": dg.FilesystemIOManager(base_dir=str(settings.dagster_home / "storage")),
    }


defs = dg.Definitions(
    assets=dg.load_assets_from_modules([models, evaluation, registry]),
    jobs=[model_pipeline_job],
    resources=build_resources(get_settings()),
)
