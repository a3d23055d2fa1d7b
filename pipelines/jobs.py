"""Jobs that group the assets for the Dagster UI."""

from __future__ import annotations

import dagster as dg

from pipelines.partitions import catalog_models

model_pipeline_job = dg.define_asset_job(
    "model_pipeline",
    selection=dg.AssetSelection.groups("download", "evaluate", "register", "package"),
    partitions_def=catalog_models,
    description="Fetch or train a catalog model, evaluate it, register it in MLflow and make the champion servable.",
)
