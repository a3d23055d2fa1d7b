"""Seed 000's prediction routes on fakes: shapes, lineage headers, options and bad input."""

import pytest

FOUR = [1, 2, 3, 4]


def test_predict_one_input_with_lineage(client):
    response = client.post("/predict", json={"model_name": "adder", "inputs": FOUR, "priority": 5, "timeout": 30})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] and body["result"] == {"sum": 10.0} and body["batch_size"] == 1 and body["timestamp"]
    info = body["model_info"]
    assert info["model"] == "adder" and info["version"] == "1" and info["mlflow_run_id"] == "run-0001"
    assert info["dagster_run_id"] == "dagster-0001" and info["device"] == "cpu"
    assert response.headers["X-Model-Version"] == "1" and response.headers["X-MLflow-Run-Id"] == "run-0001"
    assert response.headers["X-Dagster-Run-Id"] == "dagster-0001"
    # the fakes are eager torch-style engines; the worker's variant tag never leaks into the result
    assert info["variant"] == "eager-fp32" and response.headers["X-Model-Variant"] == "eager-fp32"
    assert "__variant__" not in body["result"]


def test_predict_a_batch_and_the_model_in_the_path(client):
    batch = client.post("/predict/batch", json={"model_name": "shouter", "inputs": ["one", "two"]}).json()
    assert batch["batch_size"] == 2 and batch["result"] == [{"text": "ONE"}, {"text": "TWO"}]
    single = client.post("/shouter/predict", json={"inputs": "three"}).json()
    assert single["result"] == {"text": "THREE"} and single["model_info"]["model"] == "shouter"
    listed = client.post("/predict", json={"model_name": "adder", "inputs": [FOUR, [0, 0, 0, 1]]}).json()
    assert listed["result"] == [{"sum": 10.0}, {"sum": 1.0}]


@pytest.mark.parametrize("batching", [True, False])
def test_batching_on_and_off_give_the_same_answer(client, batching):
    body = client.post("/predict", json={"model_name": "adder", "inputs": FOUR, "enable_batching": batching}).json()
    assert body["result"] == {"sum": 10.0}


@pytest.mark.parametrize(
    "path, body, status, needle",
    [
        ("/predict", {"model_name": "adder", "inputs": FOUR, "priority": "urgent"}, 422, "priority"),
        ("/predict", {"model_name": "adder", "inputs": FOUR, "timeout": -1}, 422, "timeout"),
        ("/predict", {"model_name": "adder", "inputs": FOUR, "priority": 1000}, 422, "priority"),
        ("/predict", {"model_name": "adder", "inputs": [1, 2]}, 422, "inputs"),
        ("/predict", {"model_name": "adder", "inputs": [1, 2, "x", 4]}, 422, "inputs[2]"),
        ("/predict", {"model_name": "adder"}, 422, "inputs"),
        ("/predict", {"model_name": "nope", "inputs": FOUR}, 404, "nope"),
        ("/predict", {"model_name": "unbuilt", "inputs": "x"}, 503, "kiln pipeline --model unbuilt"),
        ("/predict/batch", {"model_name": "shouter", "inputs": "not a list"}, 422, "inputs"),
        ("/predict/batch", {"model_name": "shouter", "inputs": []}, 422, "inputs"),
        ("/predict/batch", {"model_name": "shouter", "inputs": ["ok", 3]}, 422, "inputs[1]"),
        ("/nope/predict", {"inputs": "x"}, 404, "nope"),
    ],
)
def test_bad_predictions_name_the_problem(client, path, body, status, needle):
    response = client.post(path, json=body)
    assert response.status_code == status, response.text
    assert response.json()["success"] is False and needle in response.json()["error"]


def test_a_batch_over_the_limit_is_refused(client, server):
    limit = server.settings.max_inputs_per_request
    response = client.post("/predict/batch", json={"model_name": "adder", "inputs": [FOUR] * (limit + 1)})
    assert response.status_code == 422 and str(limit) in response.json()["error"]


def test_a_body_that_is_not_json_is_422(client):
    response = client.post("/predict", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 422 and response.json()["success"] is False


def test_the_timeout_answers_504_and_the_worker_goes_on(client):
    response = client.post("/predict", json={"model_name": "slow_adder", "inputs": FOUR, "timeout": 0.1})
    assert response.status_code == 504 and "0.1 s" in response.json()["error"]
    assert client.post("/predict", json={"model_name": "adder", "inputs": FOUR}).status_code == 200


def test_a_model_that_fails_to_load_is_503_and_recovers_with_retry(client, server):
    from tests.bentos.fakes import AdderEngine, FakeModel

    server.models["flaky"] = FakeModel("flaky", "classification", AdderEngine, broken=True)
    try:
        response = client.post("/predict", json={"model_name": "flaky", "inputs": FOUR})
        assert response.status_code == 503 and "corrupt" in response.json()["error"] and "action=retry" in response.json()["error"]
        health = client.get("/autoscaler/health").json()
        assert not health["healthy"] and any("flaky" in issue for issue in health["issues"])
        assert client.post("/predict", json={"model_name": "adder", "inputs": FOUR}).status_code == 200
        server.models["flaky"].broken = False  # repaired on disk
        retry = client.post("/models/manage", params={"action": "retry", "model_name": "flaky"}, headers=server.admin)
        assert retry.status_code == 200 and retry.json()["loaded"]
        assert client.post("/predict", json={"model_name": "flaky", "inputs": FOUR}).json()["result"] == {"sum": 10.0}
    finally:
        server.models.pop("flaky")
        server.worker.autoscaler.specs.pop("flaky", None)
        server.worker.autoscaler.pools.pop("flaky", None)
