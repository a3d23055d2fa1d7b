"""Seed 004's device, model and session routes on cpu-0: each curl example of the document, and bad inputs."""

from tests.bentos.devices.conftest import error_of, load


def test_device_list_has_the_cpu_with_psutil_figures(client):
    body = client.get("/api/device/list").json()
    assert body["success"] is True
    cpu = next(d for d in body["data"] if d["id"] == "cpu-0")
    assert cpu["type"] == "cpu" and cpu["isAvailable"] is True and cpu["name"]
    assert 0 < cpu["memoryAvailable"] <= cpu["memoryTotal"] and cpu["cores"] >= 1


def test_capabilities_as_torch_reports_them(client):
    data = client.get("/api/device/capabilities/cpu-0").json()["data"]
    assert data["deviceId"] == "cpu-0" and data["capabilities"]["fp32"] is True and data["capabilities"]["cuda"] is False
    assert {"digits-diffusion", "sd15"} <= set(data["supportedModelTypes"])
    assert data["maxConcurrentSessions"] == 3 and "inference" in data["supportedOperations"]


def test_unknown_device_is_404_with_the_devices_there_are(client):
    error = error_of(client.get("/api/device/capabilities/gpu-5"), 404, "DEVICE_NOT_FOUND")
    assert error["message"] == "Device with ID 'gpu-5' not found" and "cpu-0" in error["details"]["availableDevices"]
    error_of(client.post("/api/model/load/gpu-5", json={"modelPath": "digits-diffusion"}), 404, "DEVICE_NOT_FOUND")


def test_status_with_each_kind_of_credential(client, server):
    key = server.admin["X-API-Key"]
    for headers in ({"X-API-Key": key}, {"Authorization": f"Bearer {key}"}, {"Authorization": "Basic dXNlcjpwYXNz"}):
        answer = client.get("/api/device/status", headers={**headers, "Content-Type": "application/json"})
        assert answer.status_code == 200, answer.text
        from kiln.device_registry import resolve_setting

        assert answer.json()["data"]["kilnDevice"]["device"] == resolve_setting("auto")[0]
        assert answer.json()["data"]["kilnDevice"]["reason"].startswith("KILN_DEVICE=auto")


def test_optimal_device_and_its_reason(client):
    data = client.post("/api/device/optimal", json={"operation": "inference", "modelType": "sdxl",
                                                    "requirements": {"minMemory": 64, "preferredType": "gpu"}}).json()["data"]
    import torch

    if torch.cuda.is_available():
        assert data["deviceId"].startswith("gpu-")
    else:  # a CPU build of torch: the GPU preference cannot be met, and the answer says why
        assert data["deviceId"] == "cpu-0" and "preferred type gpu not used" in data["reason"]
    error_of(client.post("/api/device/optimal", json={"requirements": {"minMemory": 9_000_000}}), 404, "NOT_FOUND")


def test_load_of_the_seed_example_model_is_404_listing_the_store(client):
    answer = client.post("/api/model/load/cpu-0", json={"modelPath": "models/stable-diffusion-xl-base-1.0",
                                                        "modelType": "sdxl", "deviceId": "cpu-0",
                                                        "loadingStrategy": "optimal"})
    error = error_of(answer, 404, "MODEL_NOT_FOUND")
    assert {"digits-diffusion", "tiny-sd"} <= set(error["details"]["availableModels"])


def test_model_path_is_never_a_path(client):
    for path in ("../../etc/passwd", "/etc/passwd", "models/../secrets", "C:\\models\\x", "a/b/c/d"):
        error = error_of(client.post("/api/model/load/cpu-0", json={"modelPath": path}), 400, "INVALID_PARAMETERS")
        assert error["details"]["field"] == "modelPath", path


def test_wrong_model_type_and_bad_body_are_400(client):
    error = error_of(client.post("/api/model/load/cpu-0", json={"modelPath": "digits-diffusion", "modelType": "sdxl"}),
                     400, "INVALID_PARAMETERS")
    assert error["details"]["field"] == "modelType"
    error = error_of(client.post("/api/model/load/cpu-0", json={"modelType": "sdxl"}), 400, "INVALID_PARAMETERS")
    assert error["details"]["field"] == "modelPath"


def test_load_measures_and_delete_returns_memory(client, sessions):
    session = load(client)
    assert session["status"] == "loaded" and session["deviceId"] == "cpu-0" and session["loadingTime"] > 0
    assert session["memoryUsageBytes"] >= 0 and session["modelType"] == "digits-diffusion"
    listed = client.get("/api/processing/sessions").json()["data"]
    assert [s["sessionId"] for s in listed] == [session["sessionId"]]
    gone = client.delete(f"/api/processing/sessions/{session['sessionId']}").json()["data"]
    assert gone["status"] == "unloaded" and gone["memoryBefore"] >= gone["memoryAfter"] - 0
    assert gone["measure"] == "process RSS" and "memoryReturned" in gone
    error_of(client.delete(f"/api/processing/sessions/{session['sessionId']}"), 404, "SESSION_NOT_FOUND")


def test_a_full_device_is_busy(client, sessions):
    for _ in range(3):
        load(client)
    error = error_of(client.post("/api/model/load/cpu-0", json={"modelPath": "digits-diffusion"}), 409, "DEVICE_BUSY")
    assert error["details"]["deviceId"] == "cpu-0" and error["details"]["currentOperation"] == "model sessions"
    assert client.get("/api/device/list").json()["data"][0]["isAvailable"] is False


def test_pause_resume_cancel(client, sessions):
    session = load(client)["sessionId"]
    run = {"prompt": "a handwritten 7", "steps": 2, "seed": 1, "sessionId": session}
    paused = client.post(f"/api/processing/sessions/{session}/control", json={"action": "pause"}).json()["data"]
    assert paused["status"] == "paused"
    error_of(client.post("/api/inference/execute/cpu-0", json=run), 409, "SESSION_UNAVAILABLE")
    client.post(f"/api/processing/sessions/{session}/control", json={"action": "resume"})
    assert client.post("/api/inference/execute/cpu-0", json=run).status_code == 200
    client.post(f"/api/processing/sessions/{session}/control", json={"action": "cancel"})
    error_of(client.post("/api/inference/execute/cpu-0", json=run), 409, "SESSION_UNAVAILABLE")
    error_of(client.post(f"/api/processing/sessions/{session}/control", json={"action": "explode"}), 400,
             "INVALID_PARAMETERS")


def test_model_cache_preloads_and_hits(client, sessions):
    first = client.post("/api/model/cache", json={"modelPaths": ["digits-diffusion"],
                                                  "components": ["unet", "vae", "text_encoder"]}).json()["data"]
    entry = first["cached"][0]
    assert entry["hit"] is False and entry["components"] == ["unet"] and entry["missingComponents"] == ["vae", "text_encoder"]
    again = client.post("/api/model/cache", json={"modelPaths": ["models/digits-diffusion"]}).json()["data"]
    assert again["cached"][0]["hit"] is True and again["cached"][0]["sessionId"] == entry["sessionId"]
    error_of(client.post("/api/model/cache", json={"modelPaths": ["models/stable-diffusion-xl-refiner-1.0"]}), 404,
             "MODEL_NOT_FOUND")


def test_unknown_paths_and_methods_answer_in_the_seed_format(client):
    error_of(client.get("/api/device/nothing"), 404, "NOT_FOUND")
    error_of(client.put("/api/device/list"), 405, "METHOD_NOT_ALLOWED")
