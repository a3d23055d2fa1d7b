"""The scaling_predictor asset, materialized: it trains on the recorded traffic of Kiln's records
database, logs to MLflow, registers with the champion gate and marks the champion in the store; no new
traffic reuses it; no traffic at all fails its check with the reason instead of inventing a model."""

import dagster as dg
import pytest

from kiln.db import Database
from kiln.scaling import predictor as predictors
from kiln.settings import get_settings
from pipelines.assets.scaling import scaling_predictor
from pipelines.definitions import build_resources
from pipelines.resources import KilnWorkspace
from tests.traffic import daily_rates, write_samples

pytestmark = pytest.mark.slow


def resources(tmp_path):
    settings = get_settings()
    records = f"sqlite:///{tmp_path / 'kiln.db'}"
    database = Database(records)
    database.migrate()
    store_dir = tmp_path / "models"
    kiln = KilnWorkspace(workspace_dir=str(settings.workspace), catalog_file=str(settings.catalog_file),
                         model_store_dir=str(store_dir), records_url=records)
    return build_resources(settings) | {"kiln": kiln}, database, kiln


def checks(result):
    return {e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data.passed
            for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"}


def test_trains_registers_and_reuses(tmp_path):
    graph_resources, database, kiln = resources(tmp_path)
    write_samples(database, "minilm", daily_rates(400, seed=7))
    result = dg.materialize([scaling_predictor], resources=graph_resources, raise_on_error=False)
    assert result.success and checks(result) == {"enough_history": True}
    metadata = result.asset_materializations_for_node("scaling_predictor")[0].metadata
    assert 0 <= metadata["accuracy"].value <= 1 and metadata["mlflow_run"].value.startswith("http")
    champion = predictors.champion(kiln.store())
    assert champion is not None and champion.info["registry_version"] == metadata["registry_version"].value
    assert champion.info["mlflow_run_id"] and "minilm" in predictors.load(champion).models
    again = dg.materialize([scaling_predictor], resources=graph_resources, raise_on_error=False)
    assert again.asset_materializations_for_node("scaling_predictor")[0].metadata["reused"].value is True


def test_no_traffic_fails_its_check_with_the_reason(tmp_path):
    graph_resources, _, kiln = resources(tmp_path)
    result = dg.materialize([scaling_predictor], resources=graph_resources, raise_on_error=False)
    assert result.success and checks(result) == {"enough_history": False}
    assert predictors.champion(kiln.store()) is None
