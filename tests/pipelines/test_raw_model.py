"""raw_model on its own, in-process: the vocoder option of its run config, and the lineage tag of the MLflow
run it creates (the full graph is tested in test_assets.py and test_finetune_graph.py)."""

import dagster as dg
import pytest
import yaml
from mlflow import MlflowClient

from kiln.settings import get_settings
from kiln.store import ModelStore
from pipelines.assets.models import raw_model
from pipelines.definitions import build_resources
from pipelines.partitions import CATALOG_PARTITIONS
from pipelines.resources import KilnWorkspace
from tests.audio.tiny_models import save_tiny_speecht5


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A catalog with a tiny SpeechT5 (its HiFi-GAN in vocoder/) from a path, and a trained model."""
    root = tmp_path_factory.mktemp("raw-model")
    speecht5 = save_tiny_speecht5(root / "speecht5")
    settings = get_settings()
    catalog = root / "catalog.yaml"
    catalog.write_text(yaml.safe_dump({"models": [
        {"name": "tiny-voice", "source": "path", "id": str(speecht5), "task": "text-to-speech"},
        {"name": "example", "source": "train", "id": "digits-mlp", "task": "classification"},
    ]}))
    store = root / "models"
    resources = build_resources(settings) | {
        "kiln": KilnWorkspace(workspace_dir=str(settings.workspace), catalog_file=str(catalog), model_store_dir=str(store))
    }
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(CATALOG_PARTITIONS, ["tiny-voice", "example"])
    return resources, instance, store


def materialize(workspace, partition, **config):
    resources, instance, _ = workspace
    return dg.materialize([raw_model], partition_key=partition, resources=resources, instance=instance,
                          run_config={"ops": {"raw_model": {"config": config}}}, raise_on_error=False)


def test_include_vocoder_stores_the_vocoder_and_tags_the_fetch_run(workspace):
    result = materialize(workspace, "tiny-voice", include_vocoder=True)
    assert result.success
    stored = ModelStore(workspace[2]).latest("tiny-voice")
    assert (stored.path / "vocoder" / "config.json").is_file() and stored.info["vocoder"]["source"] == "included"
    settings = get_settings()
    run = MlflowClient(settings.tracking_uri).get_run(stored.info["mlflow_run_id"])
    assert run.data.tags["dagster_run_id"] == result.run_id and run.data.tags["kiln.stage"] == "fetch"


def test_include_vocoder_for_a_model_the_pipeline_trains_fails_the_run_saying_why(workspace):
    result = materialize(workspace, "example", include_vocoder=True, epochs=1)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "no vocoder can be fetched for 'example'" in str(failure.event_specific_data.error)
    assert ModelStore(workspace[2]).versions("example") == []  # refused before any training
