"""The real pipeline, materialized in-process into the session's temporary KILN_HOME."""

import os
from pathlib import Path

import dagster as dg
import pytest
from mlflow import MlflowClient

from kiln.settings import get_settings
from kiln.store import ModelStore
from pipelines.run import run_pipeline

pytestmark = pytest.mark.slow


def latest_metadata(instance: dg.DagsterInstance, asset: str, partition: str) -> dict:
    event = instance.get_latest_materialization_event(dg.AssetKey(asset))
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1
    ).records
    assert event is not None and records
    return {k: getattr(v, "value", v) for k, v in records[0].asset_materialization.metadata.items()}


def test_every_stage_materializes_with_metadata(built_workspace):
    for model in ("example", "minilm"):
        raw = latest_metadata(built_workspace, "raw_model", model)
        assert len(raw["sha256"]) == 64 and raw["size_mb"] > 0 and raw["mlflow_run"].startswith("http")
        registered = latest_metadata(built_workspace, "registered_model", model)
        assert registered["champion_version"] == registered["version"]
        bento = latest_metadata(built_workspace, "bento_model", model)
        assert bento["bento_model"].startswith(f"kiln-{model}:")
    assert latest_metadata(built_workspace, "evaluation", "example")["accuracy"] > 0.93
    assert latest_metadata(built_workspace, "evaluation", "minilm")["pair_ranking_accuracy"] >= 0.9


def test_mlflow_holds_runs_metrics_and_champions(built_workspace):
    settings = get_settings()
    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    for model, metric in (("example", "eval_accuracy"), ("minilm", "eval_pair_ranking_accuracy")):
        champion = client.get_model_version_by_alias(model, "champion")
        run = client.get_run(champion.run_id)
        assert metric in run.data.metrics
    history = client.get_metric_history(client.get_model_version_by_alias("example", "champion").run_id, "train_loss")
    assert len(history) == 40 and history[-1].value < history[0].value  # one point per epoch, and it learned


def test_weights_are_stored_once(built_workspace, kiln_home: Path):
    for model in ModelStore(kiln_home / "models").versions("example") + ModelStore(kiln_home / "models").versions("minilm"):
        weights = "model.safetensors"
        copies = [p for p in kiln_home.rglob(weights) if p.stat().st_size == (model.path / weights).stat().st_size]
        assert len(copies) >= 3  # model store, MLflow artifacts, BentoML store
        assert all(os.path.samefile(copy, model.path / weights) for copy in copies), copies


def test_second_run_reuses_everything(built_workspace):
    assert run_pipeline(["example"], instance=built_workspace) == {"example": True}
    assert latest_metadata(built_workspace, "raw_model", "example")["reused"] is True
    assert latest_metadata(built_workspace, "registered_model", "example")["reused"] is True
    assert latest_metadata(built_workspace, "bento_model", "example")["reused"] is True


def test_a_model_below_its_floor_is_not_registered(built_workspace, tmp_path: Path):
    """The blocking gate: a catalog floor the model cannot reach stops registration and packaging."""
    from pipelines.assets.datasets import sentiment_dataset
    from pipelines.assets.evaluation import evaluation
    from pipelines.assets.models import raw_model
    from pipelines.assets.registry import bento_model, registered_model
    from pipelines.assets.training import finetuned_model
    from pipelines.definitions import build_resources
    from pipelines.resources import KilnWorkspace

    settings = get_settings()
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(settings.catalog_file.read_text().replace("min_metric: 0.9", "min_metric: 0.999"))
    resources = build_resources(settings) | {
        "kiln": KilnWorkspace(
            workspace_dir=str(settings.workspace), catalog_file=str(catalog), model_store_dir=str(settings.model_store_dir)
        )
    }

    graph = [raw_model, sentiment_dataset, finetuned_model, evaluation, registered_model, bento_model]
    result = dg.materialize(graph, partition_key="example", resources=resources, instance=built_workspace, raise_on_error=False)
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks.pop("meets_floor") is False and all(checks.values())  # only the floor fails (data checks pass)
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == {"raw_model", "sentiment_dataset", "finetuned_model", "evaluation"}


def first_materialization(instance: dg.DagsterInstance, asset: str, partition: str):
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1, ascending=True
    ).records
    assert records, f"{asset}[{partition}] was never materialized"
    return records[0]


def test_mlflow_runs_and_bento_models_name_the_dagster_run_that_made_them(built_workspace):
    import bentoml

    settings = get_settings()
    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    for model in ("example", "minilm"):
        champion = client.get_model_version_by_alias(model, "champion")
        made_by = client.get_run(champion.run_id).data.tags["dagster_run_id"]
        # the run that first materialized raw_model for this model created its MLflow run (trained or fetched it)
        assert made_by == first_materialization(built_workspace, "raw_model", model).run_id
        assert built_workspace.get_run_by_id(made_by).tags["dagster/partition"] == model
        registered_by = first_materialization(built_workspace, "registered_model", model).run_id
        assert champion.tags["dagster_run_id"] == registered_by
        packaged = first_materialization(built_workspace, "bento_model", model)
        tag = packaged.asset_materialization.metadata["bento_model"].value
        labels = bentoml.models.get(tag).info.labels
        assert labels["dagster_run_id"] == packaged.run_id
        assert labels["training_dagster_run_id"] == made_by and labels["mlflow_run_id"] == champion.run_id
    experiment = client.get_experiment_by_name(settings.mlflow_experiment)
    runs = [r for r in client.search_runs([experiment.experiment_id]) if r.data.tags.get("kiln.model") in ("example", "minilm")]
    assert runs and all(run.data.tags.get("dagster_run_id") for run in runs)  # every run the pipeline created
