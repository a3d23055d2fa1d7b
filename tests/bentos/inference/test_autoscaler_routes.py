"""Seed 000's autoscaler routes on fakes (the real pools of kiln.serving over small engines)."""

import time

import pytest

FOUR = [1, 2, 3, 4]


def pool(client, name="adder"):
    return client.get("/autoscaler/stats").json()["models"][name]


def test_scale_load_unload(client, server):
    admin = server.admin
    response = client.post("/autoscaler/scale", params={"model_name": "adder", "target_instances": 2}, headers=admin)
    assert response.status_code == 200 and response.json()["target_instances"] == 2
    assert pool(client)["instances"] == 2
    client.post("/autoscaler/scale", params={"model_name": "adder", "target_instances": 1}, headers=admin)
    assert pool(client)["instances"] == 1
    assert client.delete("/autoscaler/unload", params={"model_name": "adder"}, headers=admin).json()["result"]["unloaded"] == 1
    assert pool(client)["loaded"] is False
    assert client.post("/autoscaler/load", params={"model_name": "adder"}, headers=admin).status_code == 200
    assert pool(client)["loaded"] is True


@pytest.mark.parametrize(
    "method, path, params, status",
    [
        ("post", "/autoscaler/scale", {"model_name": "adder", "target_instances": -1}, 422),
        ("post", "/autoscaler/scale", {"model_name": "adder", "target_instances": "two"}, 422),
        ("post", "/autoscaler/scale", {"model_name": "adder", "target_instances": 9}, 422),
        ("post", "/autoscaler/scale", {"model_name": "nope", "target_instances": 1}, 404),
        ("post", "/autoscaler/load", {"model_name": "nope"}, 404),
        ("delete", "/autoscaler/unload", {}, 422),
        ("get", "/autoscaler/metrics", {"window_seconds": -5}, 422),
        ("get", "/autoscaler/metrics", {"window_seconds": "soon"}, 422),
    ],
)
def test_bad_autoscaler_requests(client, server, method, path, params, status):
    response = getattr(client, method)(path, params=params, headers=server.admin)
    assert response.status_code == status, response.text
    assert response.json()["success"] is False


def test_stats_health_and_metrics_report_real_counters(client):
    before = pool(client)["requests"]
    for _ in range(3):
        client.post("/predict", json={"model_name": "adder", "inputs": FOUR})
    stats = client.get("/autoscaler/stats").json()
    assert stats["models"]["adder"]["requests"] == before + 3 and stats["models"]["adder"]["loads"] >= 1
    assert stats["enabled"] is True and stats["idle_ttl_seconds"] == 0 and stats["scale_to_zero"] is False
    health = client.get("/autoscaler/health").json()
    assert health["healthy"] and health["reaper_running"] and health["reaper_runs"] >= 1
    metrics = client.get("/autoscaler/metrics", params={"window_seconds": 30}).json()
    assert metrics["models"]["adder"]["requests"]["requests"] >= 3 and metrics["requests"]["requests"] >= 3
    assert metrics["window_seconds"] == 30


def test_an_idle_model_is_unloaded_after_its_ttl_and_reloads_on_demand(client, server):
    scaler = server.worker.autoscaler
    scaler.idle_ttl_seconds = 0.3
    try:
        client.post("/predict", json={"model_name": "shouter", "inputs": "x"})
        before = pool(client, "shouter")
        assert before["loaded"]
        time.sleep(0.4)
        scaler.reap()
        after = pool(client, "shouter")
        assert not after["loaded"] and after["idle_unloads"] == before["idle_unloads"] + 1
        assert client.post("/predict", json={"model_name": "shouter", "inputs": "x"}).json()["result"] == {"text": "X"}
    finally:
        scaler.idle_ttl_seconds = 0


def test_health_reports_the_real_autoscaler_state(client, server):
    body = client.get("/health").json()
    assert body["status"] == "healthy" and body["autoscaler"]["enabled"] is True
    server.worker.autoscaler.stop()
    try:
        assert client.get("/health").json()["autoscaler"]["enabled"] is False
        assert client.get("/autoscaler/stats").json()["enabled"] is False
    finally:
        server.worker.autoscaler.start(0.2)
