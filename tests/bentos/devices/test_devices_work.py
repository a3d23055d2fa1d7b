"""Seed 004's inference, postprocessing, batch and memory routes on cpu-0: each curl example of the document
(gpu-0 replaced by cpu-0), and bad inputs."""

import threading
import time
from types import SimpleNamespace

import pytest

from tests.bentos.devices.conftest import error_of, load, png_b64, png_of, wait_batch


def test_inference_draws_base64_pngs_with_metadata(client, sessions):
    session = load(client)["sessionId"]
    body = {"prompt": "a handwritten 7", "negativePrompt": "a 1", "width": 32, "height": 32, "steps": 3,
            "guidanceScale": 2.0, "seed": 12345, "sessionId": session}
    data = client.post("/api/inference/execute/cpu-0", json=body).json()["data"]
    assert data["status"] == "completed" and data["sessionId"] == session and data["inferenceId"].startswith("inf-")
    image = data["results"]["images"][0]
    assert image["format"] == "png" and image["seed"] == 12345 and png_of(image["imageData"]).size == (32, 32)
    metadata = data["results"]["metadata"]
    assert metadata["steps"] == 3 and metadata["scheduler"] == "DDIM" and metadata["inferenceTime"] > 0
    again = client.post("/api/inference/execute/cpu-0", json=body).json()["data"]["results"]["images"][0]
    assert again["imageData"] == image["imageData"]  # the same seed, the same image


def test_the_seed_inference_example_on_a_diffusers_pipeline(client, sessions):
    session = load(client, "tiny-sd", "sd15")["sessionId"]
    answer = client.post("/api/inference/execute/cpu-0", json={
        "prompt": "A beautiful landscape painting of mountains at sunset", "negativePrompt": "blurry, low quality, distorted",
        "width": 64, "height": 64, "steps": 2, "guidanceScale": 7.5, "seed": 12345, "sessionId": session})
    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]["results"]
    assert png_of(data["images"][0]["imageData"]).size == (64, 64) and data["metadata"]["scheduler"]


def test_inference_on_an_engine_model_takes_inputs_as_predict_does(client, sessions):
    session = load(client, "example", "classification")["sessionId"]
    digit = [0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0, 0, 3, 15, 2, 0, 11, 8, 0, 0, 4, 12, 0, 0, 8, 8, 0,
             0, 5, 8, 0, 0, 9, 8, 0, 0, 4, 11, 0, 1, 12, 7, 0, 0, 2, 14, 5, 10, 12, 0, 0, 0, 0, 6, 13, 10, 0, 0, 0]
    data = client.post("/api/inference/execute/cpu-0", json={"sessionId": session, "inputs": [digit, digit]}).json()
    outputs = data["data"]["results"]["outputs"]
    assert len(outputs) == 2 and outputs[0] == outputs[1] and data["data"]["results"]["metadata"]["task"] == "classification"
    error = error_of(client.post("/api/inference/execute/cpu-0", json={"sessionId": session, "inputs": [1, 2]}), 400,
                     "INVALID_PARAMETERS")
    assert error["details"]["field"].startswith("inputs")
    error_of(client.post("/api/inference/execute/cpu-0", json={"sessionId": session}), 400, "INVALID_PARAMETERS")


def test_inference_bad_inputs(client, sessions):
    error_of(client.post("/api/inference/execute/cpu-0", json={"prompt": "a 7"}), 404, "SESSION_NOT_FOUND")
    session = load(client)["sessionId"]
    error = error_of(client.post("/api/inference/execute/cpu-0", json={"prompt": "", "sessionId": session}), 400,
                     "INVALID_PARAMETERS")
    assert error["message"] == "Invalid prompt: prompt cannot be empty"
    assert error["details"] == {"field": "prompt", "value": "", "constraint": "required"}
    error = error_of(client.post("/api/inference/execute/cpu-0", json={"prompt": "a 7", "width": 1024, "height": 1024}),
                     400, "INVALID_PARAMETERS")
    assert error["details"]["field"] == "width"
    error_of(client.post("/api/inference/execute/cpu-0", json={"prompt": "a 7", "steps": 0}), 400, "INVALID_PARAMETERS")
    error_of(client.post("/api/inference/execute/gpu-0", json={"prompt": "a 7"}), 404, "DEVICE_NOT_FOUND")
    error_of(client.post("/api/inference/execute/cpu-0", json={"prompt": "a 7", "sessionId": "nope"}), 404,
             "SESSION_NOT_FOUND")


def test_upscale_classical_and_unknown_model(client):
    data = client.post("/api/postprocessing/upscale", json={"imageData": png_b64((24, 16)), "upscaleModel": "lanczos",
                                                            "upscaleFactor": 2, "deviceId": "cpu-0"}).json()["data"]
    assert png_of(data["upscaledImage"]["imageData"]).size == (48, 32) and data["method"] == "classical"
    assert data["upscaleFactor"] == 2 and data["processingTime"] >= 0
    error = error_of(client.post("/api/postprocessing/upscale", json={
        "imageData": png_b64(), "upscaleModel": "RealESRGAN_x4plus", "upscaleFactor": 2, "deviceId": "cpu-0"}), 404,
        "NOT_FOUND")
    assert "lanczos" in error["details"]["availableModels"]
    error_of(client.post("/api/postprocessing/upscale", json={"imageData": png_b64(), "upscaleFactor": 5}), 400,
             "INVALID_PARAMETERS")
    error_of(client.post("/api/postprocessing/upscale", json={"imageData": "not an image!"}), 400, "INVALID_PARAMETERS")
    error_of(client.post("/api/postprocessing/upscale", json={"imageData": png_b64(), "deviceId": "gpu-0"}), 404,
             "DEVICE_NOT_FOUND")


def test_upscale_with_a_stored_network_is_reported_as_a_model_and_counted(client, sessions):
    data = client.post("/api/postprocessing/upscale", json={"imageData": png_b64((20, 12)), "upscaleModel": "tiny-esrgan-x2",
                                                            "upscaleFactor": 2, "deviceId": "cpu-0"}).json()["data"]
    assert data["method"] == "model" and data["upscaleModel"] == "tiny-esrgan-x2" and data["tiles"] >= 1
    assert png_of(data["upscaledImage"]["imageData"]).size == (40, 24)
    assert data["architecture"] == "SRVGGNetCompact" and data["precision"] == "fp32" and data["note"] is None
    beyond = error_of(client.post("/api/postprocessing/upscale", json={  # a x2 network cannot make x4
        "imageData": png_b64((20, 12)), "upscaleModel": "tiny-esrgan-x2", "upscaleFactor": 4, "deviceId": "cpu-0"}),
        400, "INVALID_PARAMETERS")
    assert beyond["details"]["field"] == "upscaleFactor" and "upscaleFactor" in beyond["message"]
    assert "tiny-esrgan-x2" in client.get("/api/postprocessing/upscale/models").json()["data"]
    cpu = client.get("/api/memory/status").json()["data"]["devices"][0]
    assert cpu["kiln"]["bytes"]["upscalers"] > 0
    freed = client.post("/api/memory/operations/defragment", json={"aggressive": True}).json()["data"]
    assert freed["unloadedUpscalerBytes"] > 0
    assert client.get("/api/memory/status").json()["data"]["devices"][0]["kiln"]["bytes"]["upscalers"] == 0


def batch_body(prompt="a handwritten 3", upscaler="lanczos", items=3):
    return {"batchName": "landscape_generation_batch", "operations": [
        {"type": "inference", "parameters": {"prompt": prompt, "steps": 2, "width": 16, "height": 16, "seed": 5}},
        {"type": "postprocessing", "parameters": {"operation": "upscale", "upscaleFactor": 2, "upscaleModel": upscaler}}],
        "itemCount": items, "deviceIds": ["cpu-0"]}


def test_batch_runs_as_a_task_with_results_per_item(client, sessions):
    created = client.post("/api/processing/batches/create", json=batch_body())
    assert created.status_code == 201, created.text
    batch = created.json()["data"]["batchId"]
    started = client.post(f"/api/processing/batches/{batch}/execute", json={"concurrent": True, "maxConcurrency": 2})
    assert started.status_code == 202 and started.json()["data"]["taskId"]
    data = wait_batch(client, batch)
    assert data["status"] == "completed" and data["counts"]["completed"] == 3, data
    for item in data["items"]:
        assert item["result"]["width"] == 32 and [o["operation"] for o in item["outputs"]] == ["inference", "postprocessing"]
        assert client.get(item["result"]["downloadUrl"]).content[:4] == b"\x89PNG"
    error_of(client.post(f"/api/processing/batches/{batch}/execute", json={}), 409, "CONFLICT")


def test_batch_failures_are_reported_per_item(client, sessions):
    batch = client.post("/api/processing/batches/create", json=batch_body(upscaler="no-such-model", items=2)).json()
    client.post(f"/api/processing/batches/{batch['data']['batchId']}/execute", json={"concurrent": False})
    data = wait_batch(client, batch["data"]["batchId"])
    assert data["status"] == "failed" and data["counts"]["failed"] == 2
    assert all("no-such-model" in item["error"] and item["outputs"][0]["operation"] == "inference" for item in data["items"])


def test_batch_bad_inputs(client):
    error_of(client.post("/api/processing/batches/create", json=batch_body(prompt="Mountain landscape at dawn")), 400,
             "INVALID_PARAMETERS")
    bad_device = {**batch_body(), "deviceIds": ["gpu-0"]}
    error_of(client.post("/api/processing/batches/create", json=bad_device), 404, "DEVICE_NOT_FOUND")
    error_of(client.post("/api/processing/batches/create", json={**batch_body(), "itemCount": 0}), 400, "INVALID_PARAMETERS")
    error_of(client.post("/api/processing/batches/batch-nothing/execute", json={}), 404, "BATCH_NOT_FOUND")


def test_memory_status_allocate_transfer_defragment(client, sessions):
    load(client)
    status = client.get("/api/memory/status").json()["data"]["devices"][0]
    assert status["deviceId"] == "cpu-0" and status["total"] >= status["free"] > 0 and len(status["sessions"]) == 1
    allocated = client.post("/api/memory/allocations/allocate", json={"size": 8, "type": "tensor_buffer",
                                                                       "deviceId": "cpu-0", "persistent": False})
    assert allocated.status_code == 201, allocated.text
    allocation = allocated.json()["data"]["allocationId"]
    assert client.get("/api/memory/status").json()["data"]["devices"][0]["kiln"]["allocations"] == 8.0
    error_of(client.post("/api/memory/allocations/allocate", json={"size": 1_000_000, "deviceId": "cpu-0"}), 409,
             "INSUFFICIENT_MEMORY")
    moved = client.post("/api/memory/transfer", json={"sourceDevice": "cpu-0", "targetDevice": "cpu-0",
                                                      "allocationId": allocation, "async": False}).json()["data"]
    assert moved["verified"] is True and moved["bytes"] == 8 * 1024 * 1024 and moved["sameDevice"] is True
    error_of(client.post("/api/memory/transfer", json={"sourceDevice": "cpu-0", "targetDevice": "gpu-0",
                                                       "allocationId": allocation}), 404, "DEVICE_NOT_FOUND")
    queued = client.post("/api/memory/operations/defragment", json={"deviceIds": ["cpu-0"], "aggressive": True,
                                                                   "async": True}).json()["data"]
    import time

    for _ in range(200):
        operation = client.get(queued["statusUrl"]).json()["data"]
        if operation["status"] != "running":
            break
        time.sleep(0.05)
    result = operation["result"]
    assert operation["status"] == "completed" and result["releasedAllocations"] == [allocation]
    assert len(result["unloadedSessions"]) == 1 and result["bytesReturned"] >= 0
    assert client.get("/api/processing/sessions").json()["data"][0]["status"] == "unloaded"


def test_a_failing_model_is_inference_failed_and_the_session_goes_on(client, sessions, monkeypatch):
    import kiln.device_inference

    session = load(client)["sessionId"]
    real = kiln.device_inference.generate

    def out_of_memory(runner, model, request):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(kiln.device_inference, "generate", out_of_memory)  # a fault injected where the model runs
    answer = client.post("/api/inference/execute/cpu-0", json={"prompt": "a 7", "steps": 2, "sessionId": session})
    error = error_of(answer, 500, "INFERENCE_FAILED")
    assert "CUDA out of memory" in error["details"]["pythonError"]
    assert error["details"]["correlationId"] == answer.headers["X-Request-ID"]
    monkeypatch.setattr(kiln.device_inference, "generate", real)
    assert client.post("/api/inference/execute/cpu-0", json={"prompt": "a 7", "steps": 2}).status_code == 200


class BatchTasks:
    """The task service as the execute route uses it: the caller's active batches, and create."""

    def __init__(self, database, active: int, create_seconds: float = 0.0):
        self.records = self
        self.database = database
        self.running = [SimpleNamespace(id=f"t{i}") for i in range(active)]
        self.create_seconds = create_seconds
        self.created: list[str] = []

    def active(self, owner_id, task_type):
        assert task_type == "device_batch"
        return list(self.running)

    def create(self, owner_id, title, task_type, parameters):
        time.sleep(self.create_seconds)  # the window between counting and creating
        self.created.append(parameters["batch_id"])
        self.running.append(SimpleNamespace(id=f"t{len(self.running)}"))
        raise RuntimeError("created")  # what the route does next is not this test's business


def _stored_batch(settings, name):
    from kiln.tasks.types import devices

    return devices.create(settings.home_dir, name, [], 1, ["cpu-0"], None)["batchId"]


def test_five_running_batches_per_caller(tmp_path):
    from bentos.api.devices.batches import TooManyBatches, _execute
    from bentos.api.devices.schemas import BatchExecute
    from kiln.db import Database
    from kiln.settings import Settings

    settings = Settings(home=tmp_path)
    caller = SimpleNamespace(owner_id=None, see_all=True)
    tasks = BatchTasks(Database(f"sqlite:///{tmp_path / 'records.db'}"), active=5)
    with pytest.raises(TooManyBatches) as refused:
        _execute(settings, tasks, caller, _stored_batch(settings, "sixth"), BatchExecute())
    assert refused.value.status_code == 429 and len(refused.value.details["running"]) == 5 and tasks.created == []


def test_two_executes_at_once_cannot_both_take_the_last_slot(tmp_path):
    """Counting and creating happen under one lock of the records database (a file lock on sqlite, an advisory
    lock on Postgres), so of two executes racing for the fifth slot exactly one gets it."""
    from bentos.api.devices.batches import TooManyBatches, _execute
    from bentos.api.devices.schemas import BatchExecute
    from kiln.db import Database
    from kiln.settings import Settings

    settings = Settings(home=tmp_path)
    caller = SimpleNamespace(owner_id=None, see_all=True)
    tasks = BatchTasks(Database(f"sqlite:///{tmp_path / 'records.db'}"), active=4, create_seconds=0.3)
    batches = [_stored_batch(settings, f"b{i}") for i in range(2)]
    outcomes: list[str] = []

    def execute(batch_id):
        try:
            _execute(settings, tasks, SimpleNamespace(**vars(caller)), batch_id, BatchExecute())
        except TooManyBatches:
            outcomes.append("refused")
        except RuntimeError:
            outcomes.append("created")

    threads = [threading.Thread(target=execute, args=(b,)) for b in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(outcomes) == ["created", "refused"] and len(tasks.created) == 1


def test_a_sixth_running_batch_is_refused_over_http_and_only_for_its_caller(server, client, monkeypatch):
    import threading
    import time

    import kiln.tasks.types.devices

    release = threading.Event()

    def blocked(sessions, device_id, parameters, seed, count):  # the batches' work waits: they stay running or queued
        release.wait(60)
        raise RuntimeError("released by the test")

    monkeypatch.setattr(kiln.tasks.types.devices, "_inference", blocked)
    access = client.app.state.access
    first, other = ({"X-API-Key": access.create_key(f"batches-{name}-key", ["write"])[1]} for name in ("first", "other"))

    def execute(headers):
        batch = client.post("/api/processing/batches/create", json=batch_body(items=1), headers=headers)
        assert batch.status_code == 201, batch.text
        batch_id = batch.json()["data"]["batchId"]
        return batch_id, client.post(f"/api/processing/batches/{batch_id}/execute", json={}, headers=headers)

    tasks = []
    try:
        for _ in range(5):
            _, started = execute(first)
            assert started.status_code == 202, started.text
            tasks.append(started.json()["data"]["taskId"])
        sixth, refused = execute(first)
        body = refused.json()
        assert refused.status_code == 429 and body["success"] is False, refused.text
        assert body["error"]["code"] == "RATE_LIMIT_EXCEEDED" and "5 batches may run at once" in body["error"]["message"]
        assert body["error"]["details"]["limit"] == 5 and sorted(body["error"]["details"]["running"]) == sorted(tasks)
        unrun = client.get(f"/api/processing/batches/{sixth}", headers=first).json()["data"]
        assert unrun["status"] == "created" and unrun["taskId"] is None  # refused: nothing runs
        _, theirs = execute(other)  # another caller's batches are their own count
        assert theirs.status_code == 202, theirs.text
        tasks.append(theirs.json()["data"]["taskId"])
    finally:
        for task in tasks:
            client.delete(f"/tasks/{task}", headers=server.admin)
        release.set()
        deadline = time.monotonic() + 60
        for task in tasks:  # ended (cancelled, or done once released) before the next test uses the workers
            while client.get(f"/tasks/{task}", headers=server.admin).json()["status"] in ("pending", "scheduled", "running"):
                assert time.monotonic() < deadline, f"task {task} still active"
                time.sleep(0.05)
