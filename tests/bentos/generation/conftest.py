"""A fake server (real task workers, real files store) whose model store holds a digits diffusion model
trained here for a few steps, and a tiny Stable Diffusion pipeline fetched like a `source: path` model."""

import time

import pytest

from tests.bentos.fakes import fake_server

TINY_STEPS = 3  # a few optimizer steps: the routes need a real model, not a good one


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from kiln.catalog import CatalogEntry
    from kiln.recipes.digits_ddpm import DiffusionHyperparameters, DigitsDDPMRecipe
    from kiln.sources import fetch
    from kiln.store import ModelStore
    from tests.bentos.generation.tiny_pipelines import build_stable_diffusion

    home = tmp_path_factory.mktemp("generation")
    server = fake_server(home)
    store = ModelStore(server.settings.model_store_dir)
    params = DiffusionHyperparameters(steps=TINY_STEPS, batch_size=16, block_channels=(8, 16))
    with store.stage("digits-diffusion", "d" * 64, "text-to-image", {"source": "train"}) as staging:
        DigitsDDPMRecipe.train(params, staging)
    folder = build_stable_diffusion(tmp_path_factory.mktemp("tiny-sd"))
    fetch(CatalogEntry(name="tiny-sd", source="path", id=str(folder), task="text-to-image"), store)
    server.start_task_workers(threads=2)
    yield server
    server.close()


@pytest.fixture(scope="module")
def client(server):
    return server.client


def wait_for(client, task_id, timeout=60.0):
    deadline = time.monotonic() + timeout
    while True:
        status = client.get(f"/api/text-to-image/status/{task_id}").json()
        if status["status"] != "processing":
            return status
        assert time.monotonic() < deadline, f"generation still processing: {status}"
        time.sleep(0.05)


def png(size=(16, 16), colour=200):
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()
