"""Seed 000's server, device, stats and log routes on fakes."""

import os

import pytest

FOUR = [1, 2, 3, 4]


def test_root_answers_json_to_json_clients(client):
    for headers, params in (({"Accept": "application/json"}, {}), ({}, {"format": "json"}), ({"Accept": "*/*"}, {})):
        info = client.get("/", headers=headers, params=params).json()
        paths = {e["path"] for e in info["endpoints"]}
        assert info["name"] == "Kiln inference API" and {"/predict", "/autoscaler/scale", "/logs/{log_file}"} <= paths
        assert info["docs"]["swagger"] == "/docs" and "adder" in info["served_models"]


def test_health_and_info(client):
    health = client.get("/health").json()
    assert health["status"] == "healthy" and set(health["models_available"]) >= {"adder", "shouter"}
    info = client.get("/info").json()
    assert "adder" in info["served_models"] and info["served_models"]["adder"]["dagster_run_id"] == "dagster-0001"
    assert info["catalog_models"] == ["adder", "unbuilt"] and "/predict" in info["endpoints"]


def test_gpu_routes_answer_no_gpu_and_a_cpu_recommendation(client):
    from kiln.devices import read_nvml

    if read_nvml():
        pytest.skip("this machine has a GPU")
    assert client.get("/gpu/detect").json()["gpus"] == []
    best = client.get("/gpu/best").json()
    assert best["best_gpu"] is None and best["device"] == "cpu"
    assert client.get("/gpu/config").json()["config"]["device"] == "cpu"
    text = client.get("/gpu/report", params={"format": "text"})
    assert text.headers["content-type"].startswith("text/plain") and "GPUs: none found" in text.text
    assert client.get("/gpu/report", params={"format": "xml"}).status_code == 422


def test_server_config_and_redacted_config(client, server):
    config = client.get("/server/config").json()
    assert config["autoscaler"]["max_instances"] == server.settings.max_instances and config["batching"]["max_batch_size"] > 0
    settings = client.get("/config").json()["config"]
    assert settings["idle_ttl_seconds"] == 0 and settings["jwt_secret"] in (None, "***")


def test_server_optimize_unloads_idle_instances_and_reports(client, server):
    client.post("/predict", json={"model_name": "adder", "inputs": FOUR})
    body = client.post("/server/optimize", headers=server.admin).json()
    assert body["success"] and body["worker"]["unloaded_instances"].get("adder") == 1
    assert any("unloaded" in action for action in body["actions"]) and "freed_mb" in body
    assert client.post("/server/optimize", params={"idle_seconds": -1}, headers=server.admin).status_code == 422


def test_metrics_server_and_stats(client):
    for _ in range(4):
        client.post("/predict", json={"model_name": "adder", "inputs": FOUR})
    metrics = client.get("/metrics/server").json()
    assert metrics["memory"]["total_mb"] > 0 and 0 <= metrics["cpu"]["percent"] <= 100 and "adder" in metrics["models"]
    stats = client.get("/stats").json()
    assert stats["requests"]["requests"] >= 4 and stats["models"]["adder"]["requests"] >= 4
    latency = stats["requests"]["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"]
    assert client.get("/stats", params={"window_seconds": 0}).status_code == 422


@pytest.fixture
def log_file(server):
    folder = server.settings.logs_dir
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "kiln-test.log"
    path.write_text("".join(f'{{"logger": "kiln", "n": {i}}}\n' for i in range(5)))
    return path


def test_logs_list_read_clear(client, server, log_file):
    listing = client.get("/logs").json()
    assert "kiln-test.log" in [f["name"] for f in listing["files"]]
    admin = server.admin
    response = client.get("/logs/kiln-test.log", params={"lines": 2}, headers=admin)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    assert response.headers["X-Total-Lines"] == "5" and response.text.count("\n") == 2 and '"n": 4' in response.text
    first = client.get("/logs/kiln-test.log", params={"lines": 1, "from_end": False}, headers=admin).text
    assert '"n": 0' in first
    assert client.delete("/logs/kiln-test.log", headers=admin).json()["cleared"]
    assert log_file.read_text() == ""


def test_log_contents_need_admin(client, log_file):
    assert client.get("/logs/kiln-test.log").status_code == 401
    assert client.delete("/logs/kiln-test.log").status_code == 401
    assert log_file.read_text() != ""


@pytest.mark.parametrize("name", ["..%2F..%2Fetc%2Fpasswd", "..%2Fkiln-test", "%2Fetc%2Fpasswd", ".hidden", "..%5Csecret", "nope.log"])
def test_log_names_outside_the_folder_are_refused(client, server, name):
    for method in ("get", "delete"):
        response = getattr(client, method)(f"/logs/{name}", headers=server.admin)
        assert response.status_code in (400, 404), (name, response.status_code)


def test_log_symlink_out_of_the_folder_is_refused(client, server, tmp_path, log_file):
    secret = tmp_path / "secret.txt"
    secret.write_text("keep out\n")
    link = server.settings.logs_dir / "escape.log"
    os.symlink(secret, link)
    try:
        assert client.get("/logs/escape.log", headers=server.admin).status_code == 400
        assert client.delete("/logs/escape.log", headers=server.admin).status_code == 400
    finally:
        link.unlink()
    assert secret.read_text() == "keep out\n"


def test_logs_bad_query_is_422(client, server, log_file):
    assert client.get("/logs/kiln-test.log", params={"lines": -3}, headers=server.admin).status_code == 422
    assert client.get("/logs/kiln-test.log", params={"lines": "many"}, headers=server.admin).status_code == 422


def test_cuda_is_reported_as_torch_sees_it_apart_from_nvml(client):
    import torch

    body = client.get("/gpu/detect").json()
    assert body["cuda_available"] is torch.cuda.is_available() and body["torch_cuda_available"] is torch.cuda.is_available()
    assert body["nvml_gpu_count"] == body["count"] and body["reason"]
    if torch.version.cuda is None:
        assert "CPU-only build" in body["reason"]


def test_include_vocoder_for_a_model_without_one_is_refused(client, server):
    response = client.post("/models/download", json={"name": "unbuilt", "include_vocoder": True}, headers=server.admin)
    assert response.status_code == 422 and "vocoder" in response.json()["error"]
