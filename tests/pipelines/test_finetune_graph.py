"""The fine-tuning branch of the graph, materialized for real on SMALL settings (1,000 sentences, one
epoch): data checks, LoRA on MiniLM, optimization, evaluation with report, champion gate, bento, serving."""

from pathlib import Path

import dagster as dg
import pytest
from mlflow import MlflowClient

from kiln.settings import get_settings
from kiln.tracking import METRIC_VALUE_TAG
from pipelines.definitions import ASSET_MODULES, build_resources
from pipelines.partitions import CATALOG_PARTITIONS
from pipelines.resources import KilnWorkspace

pytestmark = pytest.mark.slow
MODEL = "minilm-sentiment"
GRAPH = [
    "raw_model", "sentiment_dataset", "finetuned_model", "optimized_model", "evaluation", "evaluation_report",
    "registered_model", "bento_model",
]
SMALL = {
    "sentiment_dataset": {"config": {"limit": 1000}},
    "finetuned_model": {"config": {"epochs": 1}},
    "optimized_model": {"config": {"benchmark_items": 32}},
}


ASSETS = {asset.key.to_user_string(): asset for asset in dg.load_assets_from_modules(ASSET_MODULES)}


def small(**finetune) -> dict:
    ops = {**SMALL, "finetuned_model": {"config": SMALL["finetuned_model"]["config"] | finetune}}
    return {"ops": ops}


@pytest.fixture(scope="module")
def env(kiln_home, tmp_path_factory):
    """Resources with a catalog without a floor for the fine-tune (tiny runs here; the gate is tested elsewhere)."""
    settings = get_settings()
    catalog = tmp_path_factory.mktemp("catalog") / "catalog.yaml"
    text = settings.catalog_file.read_text()
    head, tail = text.split(f"- name: {MODEL}")
    catalog.write_text(head + f"- name: {MODEL}" + tail.replace("min_metric: 0.75", "min_metric: 0.0"))
    resources = build_resources(settings) | {
        "kiln": KilnWorkspace(workspace_dir=str(settings.workspace), catalog_file=str(catalog), model_store_dir=str(settings.model_store_dir))
    }
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(CATALOG_PARTITIONS, [MODEL])
    return resources, instance


def materialize(env, names, run_config):
    resources, instance = env
    run_config = {"ops": {op: config for op, config in run_config["ops"].items() if op in names}}
    # the rest of the graph is there as sources: unselected upstream values load from the IO manager
    return dg.materialize([ASSETS[name] for name in GRAPH], selection=names, partition_key=MODEL, resources=resources, instance=instance, run_config=run_config, raise_on_error=False)


def metadata(result, asset: str) -> dict:
    events = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == asset]
    assert events, f"{asset} was not materialized"
    return {k: getattr(v, "value", v) for k, v in events[-1].materialization.metadata.items()}


def materialized(result) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


@pytest.fixture(scope="module")
def first_run(env):
    result = materialize(env, GRAPH, small())
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    return result


def test_the_whole_branch_materializes_with_metadata(first_run):
    assert materialized(first_run) == set(GRAPH)
    tuned = metadata(first_run, "finetuned_model")
    assert tuned["fine_tuned"] is True and tuned["quantization"] == "none"
    assert 0.5 < tuned["trainable_share_percent"] < 2.0  # LoRA r=8 on query/value + head: about 0.97%
    assert tuned["steps"] == 25  # 800 training sentences, batch 32, one epoch
    evaluation = metadata(first_run, "evaluation")
    assert evaluation["accuracy"] > 0.55 and evaluation["test_examples"] == 100
    assert evaluation["confusion_negative_negative"] + evaluation["confusion_positive_positive"] == round(100 * evaluation["accuracy"])
    optimized = metadata(first_run, "optimized_model")
    assert "| onnx-int8 |" in optimized["table"] and abs(optimized["int8_accuracy_delta"]) <= 0.1
    report = Path(metadata(first_run, "evaluation_report")["notebook"])
    import nbformat

    shown = [o for c in nbformat.read(str(report), as_version=4).cells for o in c.get("outputs", [])]
    assert any("image/png" in o.get("data", {}) for o in shown)  # the confusion matrix, rendered
    assert metadata(first_run, "bento_model")["bento_model"].startswith(f"kiln-{MODEL}:")


def test_mlflow_has_step_metrics_plot_report_and_champion(first_run):
    settings = get_settings()
    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    champion = client.get_model_version_by_alias(MODEL, "champion")
    run = client.get_run(champion.run_id)
    assert len(client.get_metric_history(run.info.run_id, "train_loss")) == 25  # one point per step
    assert {"eval_accuracy", "eval_f1_macro", "trainable_share", "opt_onnx_int8_speedup"} <= set(run.data.metrics)
    artifacts = {a.path for folder in ("evaluation", "reports", "optimization") for a in client.list_artifacts(run.info.run_id, folder)}
    assert "evaluation/confusion_matrix.png" in artifacts and "optimization/optimization.json" in artifacts
    assert any(p.endswith(".ipynb") for p in artifacts) and any(p.endswith(".html") for p in artifacts)


GATEWAY_SCRIPT = """
import json
from starlette.testclient import TestClient
from bentos.gateway import Gateway

with TestClient(Gateway.to_asgi()) as client:
    good = client.post("/predict", json={"model_name": "%s", "inputs": ["A warm, funny and moving film.", "Dull and lifeless."]})
    bad = client.post("/predict", json={"model_name": "%s", "inputs": [42]})
    print(json.dumps({"good": [good.status_code, good.json()], "bad": bad.status_code}))
""" % (MODEL, MODEL)


def test_the_gateway_serves_the_fine_tuned_classifier(first_run, kiln_home):
    # a fresh process: BentoML's metrics registry allows one Gateway.to_asgi() per process (tests/bentos has it)
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "KILN_HOME": str(kiln_home), "PYTHONPATH": str(get_settings().workspace)}
    done = subprocess.run([sys.executable, "-c", GATEWAY_SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    status, body = answer["good"]
    assert status == 200, body
    results = body["result"]
    assert [set(r["scores"]) for r in results] == [{"negative", "positive"}] * 2
    assert all(r["label"] in ("negative", "positive") and abs(sum(r["scores"].values()) - 1) < 1e-4 for r in results)
    assert body["model_info"]["model"] == MODEL
    assert answer["bad"] == 422


def test_a_data_quality_failure_stops_fine_tuning(env, first_run):
    strict = small(seed=7) | {"ops": {**small(seed=7)["ops"], "sentiment_dataset": {"config": {"limit": 1000, "max_text_chars": 40}}}}
    result = materialize(env, ["raw_model", "sentiment_dataset", "finetuned_model"], strict)
    failed = {c.check_name for c in result.get_asset_check_evaluations() if not c.passed}
    assert failed == {"text_length"}
    assert "finetuned_model" not in materialized(result)


def test_champion_moves_only_on_improvement(env, first_run):
    settings = get_settings()
    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    first = client.get_model_version_by_alias(MODEL, "champion")
    challenger = small(seed=1, max_steps=6)

    # the champion claims a score no candidate can reach: the challenger is registered but not promoted
    client.set_model_version_tag(MODEL, first.version, METRIC_VALUE_TAG, "1.01")
    lost = materialize(env, GRAPH[2:], challenger)  # upstream assets come from the first run
    gate = [c for c in lost.get_asset_check_evaluations() if c.check_name == "champion_gate"]
    assert [c.passed for c in gate] == [False] and "does not beat" in gate[0].metadata["reason"].value
    assert client.get_model_version_by_alias(MODEL, "champion").version == first.version
    assert "registered_model" in materialized(lost) and "bento_model" not in materialized(lost)

    # the champion's score is beaten: the same challenger (reused, not retrained) takes the alias
    client.set_model_version_tag(MODEL, first.version, METRIC_VALUE_TAG, "0.0")
    won = materialize(env, GRAPH[2:], challenger)
    assert won.success and metadata(won, "finetuned_model")["reused"] is True
    assert metadata(won, "registered_model")["champion_moved"] is True
    assert client.get_model_version_by_alias(MODEL, "champion").version != first.version
    assert "bento_model" in materialized(won)


def test_package_builds_a_bento_labelled_with_runs(env, first_run):
    resources, instance = env
    result = dg.materialize([ASSETS["bento"]], resources=resources, instance=instance)
    built = metadata(result, "bento")
    assert built["bento"].startswith("kiln:") and MODEL in built["models"]
    import bentoml

    labels = bentoml.bentos.get(built["bento"]).info.labels
    assert labels["dagster_run_id"] == result.run_id and len(labels[f"mlflow_run_id.{MODEL}"]) == 32
    again = dg.materialize([ASSETS["bento"]], resources=resources, instance=instance)
    assert metadata(again, "bento")["reused"] is True  # same champions, same bento
