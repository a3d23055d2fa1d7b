"""Seed 001's Training APIs over a real `kiln serve` (its embedded task workers; no Dagster webserver, so each
training is a `python -m pipelines.launch` Dagster run on the home's instance): an image_classifier fine-tune
of EfficientNet-Lite0 on an uploaded .zip of digit images runs to completed, is registered and then answers
/api/image-recognition/classify by its name; a long digits training stops and ends cancelled."""

import os
import time
from pathlib import Path

import httpx
import pytest

from kiln.settings import Settings
from kiln.store import ModelStore
from tests.conftest import free_port
from tests.digit_images import digit_pngs, store_lite0, zip_bytes
from tests.servers import KILN, start, stop, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    home = tmp_path_factory.mktemp("training-http")
    store_lite0(ModelStore(Settings(home=home).model_store_dir))  # what `kiln pipeline --model efficientnet-lite0` leaves
    port = free_port()
    env = {**os.environ, "KILN_HOME": str(home), "KILN_PORT": str(port), "KILN_TASK_PROGRESS_SECONDS": "0.2",
           "KILN_DAGSTER_PORT": str(free_port())}  # nothing listens there: runs go through the process path
    log = home / "serve.log"
    process = start([str(KILN), "serve", "--port", str(port)], log, env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{url}/health", process, log, ready=lambda r: r.status_code in (200, 503) and "status" in r.json())
        with httpx.Client(base_url=url, timeout=60) as client:
            yield client, log
    finally:
        stop(process)


def wait_for_status(client: httpx.Client, task_id: str, done, log: Path, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = client.get(f"/api/training/status/{task_id}").json()
        if done(status):
            return status
        assert time.monotonic() < deadline, f"{status}\n{log.read_text()[-3000:]}"
        time.sleep(0.3)


def test_an_image_classifier_trains_over_http_and_is_served_by_name(api):
    client, log = api
    upload = client.post("/files/upload", files={"file": ("digits.zip", zip_bytes(digit_pngs()), "application/zip")})
    assert upload.status_code == 201, upload.text
    body = {"model_type": "image_classifier", "base_model": "efficientnet-lite0", "dataset_path": upload.json()["id"],
            "output_dir": "/models/digit-images", "epochs": 2, "batch_size": 8, "learning_rate": 0.003, "image_size": 128}
    started = client.post("/api/training/start", json=body)
    assert started.status_code == 202, started.text
    task_id = started.json()["task_id"]
    status = wait_for_status(client, task_id, lambda s: s["status"] in ("completed", "failed", "cancelled"), log)
    assert status["status"] == "completed", status
    assert status["current_step"] == status["total_steps"] == 8 and status["metrics"]["accuracy"] > 0.5, status
    assert status["dagster_run_id"] and status["mlflow_run_id"] and status["served"] is True, status

    digit = digit_pngs()["digit-1/11.png"]
    answer = client.post("/api/image-recognition/classify", files={"image": ("1.png", digit, "image/png")},
                         data={"model": "digit-images", "top_k": "3"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["model"] == "digit-images"
    assert {c["label"] for c in answer.json()["classifications"]} == {"digit-0", "digit-1", "digit-7"}

    bad = client.post("/api/training/start", json={**body, "dataset_path": "/etc"})
    assert bad.status_code == 422 and "dataset root" in bad.json()["detail"]


def test_a_running_training_stops_and_ends_cancelled(api):
    client, log = api
    body = {"model_type": "digits", "base_model": "digits-mlp", "output_dir": "long-digits", "epochs": 60,
            "batch_size": 16, "save_steps": 50}  # 5400 steps: far longer than the test waits
    task_id = client.post("/api/training/start", json=body).json()["task_id"]
    wait_for_status(client, task_id, lambda s: s["current_step"] > 0, log)
    stopped = client.post(f"/api/training/stop/{task_id}")
    assert stopped.status_code == 200 and stopped.json()["status"] in ("stopping", "cancelled"), stopped.text
    status = wait_for_status(client, task_id, lambda s: s["status"] not in ("running", "pending"), log, timeout=90)
    assert status["status"] == "cancelled", status
    assert client.post(f"/api/training/stop/{task_id}").status_code == 409
