"""Unit tests of the device layer of seed 004: model paths, device choice, KILN_DEVICE, the sessions' work
admission (pause, cancel of queued work), the cache budget over the serving pools, and the error format."""

import threading

import pytest

from kiln.device_models import InvalidParameters, parse_model_path
from kiln.device_registry import Device, DeviceBusy, choose, max_sessions, resolve_setting
from kiln.errors import BadRequest, NotFound


def test_model_paths_name_store_models():
    assert parse_model_path("digits-diffusion") == ("digits-diffusion", None)
    assert parse_model_path("models/digits-diffusion") == ("digits-diffusion", None)
    assert parse_model_path("digits-diffusion:abc123") == ("digits-diffusion", "abc123")
    assert parse_model_path("models/digits-diffusion/abc123") == ("digits-diffusion", "abc123")
    for bad in ("", "../x", "/etc/passwd", "~/x", "a\\b", "C:/x", "models/a/b/c", "a b", "x\x00"):
        with pytest.raises(InvalidParameters):
            parse_model_path(bad)


def device(id_, type_, free, usable=True):
    return Device(id_, type_, id_.upper(), "cpu" if type_ == "cpu" else f"cuda:{id_[-1]}", free * 2, free, usable,
                  "torch runs here" if usable else "a CPU-only build of torch")


def test_choose_prefers_the_type_and_says_why_not():
    cpu, gpu = device("cpu-0", "cpu", 8000), device("gpu-0", "gpu", 20000, usable=False)
    pick, reason = choose([cpu, gpu], {}, lambda d: 2, 1000, "gpu", "inference")
    assert pick is cpu and "CPU-only" in reason
    usable_gpu = device("gpu-0", "gpu", 20000)
    assert choose([cpu, usable_gpu], {}, lambda d: 2, 1000, None, "inference")[0] is usable_gpu
    assert choose([cpu, usable_gpu], {"gpu-0": 2}, lambda d: 2, 1000, None, "inference")[0] is cpu
    with pytest.raises(DeviceBusy):
        choose([cpu], {"cpu-0": 2}, lambda d: 2, 1000, None, "inference")
    with pytest.raises(NotFound):
        choose([cpu], {}, lambda d: 2, 9000, None, "inference")


def test_max_sessions_from_memory_or_the_setting():
    assert max_sessions(device("cpu-0", "cpu", 3000), 0, 2048) == 2  # 6000 MB total
    assert max_sessions(device("cpu-0", "cpu", 100), 0, 2048) == 1
    assert max_sessions(device("cpu-0", "cpu", 10**6), 0, 2048) == 8
    assert max_sessions(device("cpu-0", "cpu", 100), 5, 2048) == 5


def test_kiln_device_on_a_cpu_torch():
    import torch

    assert resolve_setting("cpu") == ("cpu", "KILN_DEVICE=cpu")
    if not torch.cuda.is_available():
        chosen, why = resolve_setting("auto")
        assert chosen == "cpu" and "CPU" in why
        with pytest.raises(BadRequest):
            resolve_setting("cuda:0")


def test_error_format_of_seed_004():
    from bentos.api.http.formats import devices

    body = devices(422, "Invalid request", "VALIDATION_ERROR", [{"field": "x"}], "rid")
    assert body["success"] is False and body["error"]["code"] == "INVALID_PARAMETERS"
    assert devices(500, "boom", "INTERNAL_ERROR", "RuntimeError", "rid")["error"]["details"] == {
        "pythonError": "RuntimeError", "correlationId": "rid"}
    assert devices(404, "x", "DEVICE_NOT_FOUND", {}, "r")["error"]["code"] == "DEVICE_NOT_FOUND"


@pytest.fixture(scope="module")
def manager(tmp_path_factory):
    from kiln.device_sessions import DeviceSessions
    from kiln.recipes.digits_ddpm import DiffusionHyperparameters, DigitsDDPMRecipe
    from kiln.settings import Settings
    from kiln.store import ModelStore

    home = tmp_path_factory.mktemp("device-sessions")
    settings = Settings(home=home, idle_ttl_seconds=0, device_max_sessions=4, device_queue_seconds=5,
                        model_cache_bytes=10**9)
    with ModelStore(settings.model_store_dir).stage("digits-diffusion", "e" * 64, "text-to-image") as staging:
        DigitsDDPMRecipe.train(DiffusionHyperparameters(steps=1, batch_size=8, block_channels=(8, 16)), staging)
    sessions = DeviceSessions(settings)
    yield sessions
    sessions.close()


def test_cancel_stops_queued_work_and_running_work_finishes(manager):
    from kiln.device_sessions import SessionUnavailable

    session, _ = manager.load("cpu-0", "digits-diffusion", "digits-diffusion")
    release, started, outcomes = threading.Event(), threading.Event(), {}

    def long(runner):
        started.set()
        release.wait(10)
        return "finished"

    def call(name, work):
        try:
            outcomes[name] = manager.run(session.id, work)[0]
        except SessionUnavailable as exc:
            outcomes[name] = exc.code

    first = threading.Thread(target=call, args=("running", long))
    first.start()
    started.wait(10)
    second = threading.Thread(target=call, args=("queued", lambda runner: "ran"))
    second.start()
    while session.queued == 0:
        threading.Event().wait(0.01)
    assert manager.control(session.id, "cancel")["cancelledOperations"] == 1
    second.join(10)
    release.set()
    first.join(10)
    assert outcomes == {"running": "finished", "queued": "SESSION_UNAVAILABLE"}
    answer = manager.unload(session.id)
    assert answer["memoryAfter"] <= answer["memoryBefore"] and answer["memoryTaken"] == session.memory_bytes


def test_the_cache_budget_unloads_the_least_recently_used(manager):
    first, _ = manager.load("cpu-0", "digits-diffusion", None)
    second, _ = manager.load("cpu-0", "models/digits-diffusion", None)
    first.memory_bytes = second.memory_bytes = int(0.6 * manager.settings.model_cache_bytes)  # as if measured so
    first.last_used, second.last_used = 1.0, 2.0
    assert manager.enforce_budget(keep=second.id) == [first.id]
    assert not manager.loaded(first) and manager.status(first) == "unloaded" and manager.loaded(second)
    manager.run(first.id, lambda runner: None)  # the pool loads it again on use
    assert manager.loaded(first) and first.loads == 2
    for session in (first, second):
        manager.unload(session.id)


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU that torch can use")
def test_a_session_on_the_gpu_is_measured_by_the_cuda_allocator(manager):
    session, _ = manager.load("gpu-0", "digits-diffusion", "digits-diffusion")
    assert session.torch_device == "cuda:0" and session.memory_bytes > 0
    result, _ = manager.run(session.id, lambda runner: next(runner.unet.parameters()).device.type)
    assert result == "cuda"
    answer = manager.unload(session.id)
    assert answer["measure"] == "CUDA allocator" and answer["memoryReturned"] >= 0.95 * answer["memoryTaken"]


def test_a_session_is_its_owners(manager):
    from kiln.device_sessions import SessionNotFound

    session, _ = manager.load("cpu-0", "digits-diffusion", None, "lazy", owner="user-a")
    assert not manager.loaded(session) and manager.get(session.id, "user-a", see_all=False) is session
    with pytest.raises(SessionNotFound):
        manager.get(session.id, "user-b", see_all=False)
    assert manager.get(session.id) is session  # admins, and everyone with auth off
    manager.unload(session.id)
