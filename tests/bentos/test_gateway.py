"""The gateway service in-process (``to_asgi()``), serving the models the pipeline built."""

import bentoml
import numpy as np
import pytest

from kiln.catalog import CatalogEntry
from kiln.recipes.digits import digits_split

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(gateway_client):
    return gateway_client


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


def test_catalog_model_not_built_is_503_saying_how_to_get_it(client):
    gateway = bentoml.get_current_service()
    gateway.catalog.models.append(CatalogEntry(name="later", source="package", id="x", task="sentence-embedding"))
    try:
        response = predict(client, model_name="later", inputs="hello")
    finally:
        gateway.catalog.models.pop()
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
    assert {"/predict", "/health", "/models", "/info"} <= set(paths)
