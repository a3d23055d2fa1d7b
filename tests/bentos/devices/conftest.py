"""A fake server (real task workers, real files store) whose model store holds a digits diffusion model trained
here for a few steps, a tiny Stable Diffusion pipeline (any prompt) and the digits classifier (an inference
engine's model, one epoch) and a tiny super-resolution network, for seed 004's routes on cpu-0."""

import base64
import io
import time

import pytest

from tests.bentos.fakes import fake_server


@pytest.fixture(scope="package")  # one trained store for the whole package: training is the slow part
def server(tmp_path_factory):
    from kiln.catalog import CatalogEntry
    from kiln.recipes.digits_ddpm import DiffusionHyperparameters, DigitsDDPMRecipe
    from kiln.sources import fetch
    from kiln.store import ModelStore
    from tests.bentos.generation.tiny_pipelines import build_stable_diffusion

    home = tmp_path_factory.mktemp("devices")
    server = fake_server(home, device_max_sessions=3, device_queue_seconds=1.0)
    store = ModelStore(server.settings.model_store_dir)
    params = DiffusionHyperparameters(steps=2, batch_size=16, block_channels=(8, 16))
    with store.stage("digits-diffusion", "d" * 64, "text-to-image", {"source": "train"}) as staging:
        DigitsDDPMRecipe.train(params, staging)
    from kiln.recipes.digits import DigitsHyperparameters, DigitsMLPRecipe

    with store.stage("example", "c" * 64, "classification") as staging:  # an inference engine's model
        DigitsMLPRecipe.train(DigitsHyperparameters(epochs=1), staging)
    import torch

    from kiln.upscaling_arches import SRVGGNetCompact

    network = SRVGGNetCompact(features=8, convs=2, scale=2)  # a tiny Real-ESRGAN-shaped network, random weights
    with store.stage("tiny-esrgan-x2", "b" * 64, "super-resolution") as staging:
        torch.save({"params_ema": network.state_dict()}, staging / "weights.pth")
    folder = build_stable_diffusion(tmp_path_factory.mktemp("tiny-sd"))
    fetch(CatalogEntry(name="tiny-sd", source="path", id=str(folder), task="text-to-image"), store)
    server.start_task_workers(threads=2)
    yield server
    from kiln.device_sessions import shared_sessions

    shared_sessions(server.settings).close()
    server.close()


@pytest.fixture(scope="package")
def client(server):
    return server.client


@pytest.fixture()
def sessions(server):
    """Every test starts and ends with no sessions (the device's slots are shared)."""
    from kiln.device_sessions import shared_sessions

    manager = shared_sessions(server.settings)
    yield manager
    for session in manager.all():
        manager.unload(session.id, wait_seconds=5)


def load(client, model="digits-diffusion", model_type="digits-diffusion", device="cpu-0"):
    answer = client.post(f"/api/model/load/{device}", json={"modelPath": model, "modelType": model_type,
                                                            "deviceId": device, "loadingStrategy": "optimal"})
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]


def png_of(data):
    from PIL import Image

    return Image.open(io.BytesIO(base64.b64decode(data)))


def png_b64(size=(16, 16), colour=200):
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, (colour, 40, 90)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def wait_batch(client, batch_id, timeout=120.0):
    deadline = time.monotonic() + timeout
    while True:
        data = client.get(f"/api/processing/batches/{batch_id}").json()["data"]
        if data["status"] not in ("running", "created"):
            return data
        assert time.monotonic() < deadline, f"batch still running: {data}"
        time.sleep(0.1)


def error_of(answer, status, code):
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["success"] is False and body["error"]["code"] == code, body
    return body["error"]
