"""Seed 001's Generation APIs on a fake server with real task workers and real (tiny) models."""

import io

import numpy as np
import pytest
from PIL import Image

from tests.bentos.generation.conftest import png, wait_for


def image_at(client, url):
    response = client.get(url)
    assert response.status_code == 200, response.text
    return Image.open(io.BytesIO(response.content))


def test_generate_answers_at_once_then_status_gives_the_png(client):
    started = client.post("/api/text-to-image/generate", json={"prompt": "a handwritten 3", "seed": 3, "width": 64,
                                                               "height": 64, "num_inference_steps": 5})
    assert started.status_code == 202, started.text
    body = started.json()
    assert body["status"] == "processing" and body["image_url"] is None and body["progress"] == 0
    done = wait_for(client, body["task_id"])
    assert done["status"] == "completed" and done["progress"] == 100 and done["error"] is None, done
    assert done["image_url"] == f"/outputs/images/generated_{body['task_id']}.png" and done["seed"] == 3
    image = image_at(client, done["image_url"])
    assert image.format == "PNG" and image.size == (64, 64)
    task = client.get(f"/tasks/{body['task_id']}").json()  # the same task, in the task system
    assert task["task_type"] == "generate_image" and task["result"]["image"]["download_url"].startswith("/files/")
    assert client.get(task["result"]["image"]["download_url"]).content == client.get(done["image_url"]).content


def test_the_same_seed_gives_the_same_image(client):
    ids = [client.post("/api/text-to-image/generate", json={"prompt": "seven", "seed": seed,
                                                            "num_inference_steps": 4}).json()["task_id"]
           for seed in (11, 11, 12)]
    pixels = [np.asarray(image_at(client, wait_for(client, i)["image_url"]), dtype=np.int16) for i in ids]
    assert np.abs(pixels[0] - pixels[1]).max() <= 1  # batched with other requests or not
    assert np.abs(pixels[0] - pixels[2]).max() > 10


@pytest.mark.parametrize("body, field", [
    ({"prompt": "a beautiful sunset over the ocean"}, "draws the handwritten digits 0, 1, 2"),
    ({"prompt": "a 3", "width": 20, "height": 20}, "width: this model makes square images of 16x16, 32x32"),
    ({"prompt": "a 3", "width": 32, "height": 64}, "height:"),
    ({"prompt": "a 3", "model_id": "tiny-sd", "width": 31}, "multiples of 2"),
    ({"prompt": ""}, "prompt"),
    ({"prompt": "a 3", "num_inference_steps": 0}, "num_inference_steps"),
])
def test_what_the_model_cannot_do_is_a_422_saying_why(client, body, field):
    response = client.post("/api/text-to-image/generate", json=body)
    assert response.status_code == 422, response.text
    assert field in response.json()["detail"]


def test_an_absent_model_is_404_listing_the_stored_ones_and_a_known_hub_one_503(client):
    absent = client.post("/api/text-to-image/generate", json={"prompt": "a 3", "model_id": "nope"})
    assert absent.status_code == 404 and "Stored generation models: digits-diffusion, tiny-sd" in absent.json()["detail"]
    hub = client.post("/api/text-to-image/generate", json={"prompt": "a 3", "model_id": "stable-diffusion-v1-5"})
    assert hub.status_code == 503
    assert "source: huggingface, id: stable-diffusion-v1-5/stable-diffusion-v1-5" in hub.json()["detail"]


def test_an_unknown_task_id_is_a_404(client):
    response = client.get("/api/text-to-image/status/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 404 and "detail" in response.json()
    other = client.post("/tasks", json={"title": "w", "task_type": "wait", "parameters": {"seconds": 0}}).json()
    assert client.get(f"/api/text-to-image/status/{other['id']}").status_code == 404  # not a generation task


def test_models_lists_what_is_stored(client):
    client.post("/api/text-to-image/generate", json={"prompt": "a 1", "num_inference_steps": 1})
    models = {m["id"]: m for m in client.get("/api/text-to-image/models").json()}
    assert set(models) == {"digits-diffusion", "tiny-sd"}
    assert models["digits-diffusion"]["resolution"] == "16x16" and models["tiny-sd"]["resolution"] == "32x32"
    assert models["tiny-sd"]["kind"] == "diffusers" and isinstance(models["tiny-sd"]["loaded"], bool)


def test_cancel_stops_between_denoising_steps(client):
    started = client.post("/api/text-to-video/generate", json={"prompt": "a 2 turning into a 5", "num_frames": 128,
                                                               "num_inference_steps": 200, "format": "gif"}).json()
    task_id = started["task_id"]
    for _ in range(400):
        status = client.get(f"/api/text-to-image/status/{task_id}").json()
        if status["step"]:
            break
        import time

        time.sleep(0.05)
    assert status["step"] and status["total_steps"] == 200 and status["eta_seconds"] is not None, status
    assert client.delete(f"/tasks/{task_id}").status_code == 200
    done = wait_for(client, task_id, timeout=30)
    assert done["status"] == "cancelled" and done["progress"] < 95 and done["video_url"] is None, done


def test_image_to_image_sdedit_and_bad_uploads(client):
    ok = client.post("/api/image-to-image/generate", files={"image": ("seven.png", png(), "image/png")},
                     data={"prompt": "a 7", "strength": "0.6", "num_inference_steps": "5", "seed": "1"})
    assert ok.status_code == 202, ok.text
    done = wait_for(client, ok.json()["task_id"])
    assert done["status"] == "completed" and done["image_url"].startswith("/outputs/images/transformed_"), done
    kept = client.post("/api/image-to-image/generate", files={"image": ("seven.png", png(), "image/png")},
                       data={"prompt": "a 7", "strength": "0"}).json()
    kept_image = np.asarray(image_at(client, wait_for(client, kept["task_id"])["image_url"]).convert("L"))
    assert np.abs(kept_image.astype(int) - 55).max() <= 1  # the input as given: light paper read as a dark digit
    text = client.post("/api/image-to-image/generate", files={"image": ("a.png", b"just some text", "image/png")},
                       data={"prompt": "a 7"})
    assert text.status_code == 415, text.text
    broken = client.post("/api/image-to-image/generate",
                         files={"image": ("b.png", png()[:40] + b"\x00" * 30, "image/png")}, data={"prompt": "a 7"})
    assert broken.status_code == 400 and "not a readable image" in broken.json()["detail"]
    missing = client.post("/api/image-to-image/generate", data={"prompt": "a 7"})
    assert missing.status_code == 422
    ungrounded = client.post("/api/image-to-image/generate", files={"image": ("s.png", png(), "image/png")},
                             data={"prompt": "a cat"})
    assert ungrounded.status_code == 422 and "digits" in ungrounded.json()["detail"]


def test_text_to_video_and_image_to_video(client):
    import av

    video = client.post("/api/text-to-video/generate", json={"prompt": "a 3 turning into a 7", "num_frames": 6,
                                                             "fps": 6, "num_inference_steps": 3, "seed": 2})
    assert video.status_code == 202
    done = wait_for(client, video.json()["task_id"])
    assert done["status"] == "completed" and done["video_url"].endswith(".mp4"), done
    data = client.get(done["video_url"]).content
    with av.open(io.BytesIO(data)) as container:
        assert len(list(container.decode(video=0))) == 6
    animated = client.post("/api/image-to-video/generate", files={"image": ("s.png", png(), "image/png")},
                           data={"num_frames": "4", "num_inference_steps": "3", "format": "gif"})
    assert animated.status_code == 202, animated.text
    done = wait_for(client, animated.json()["task_id"])
    assert done["status"] == "completed" and done["video_url"].endswith(".gif"), done
    gif = image_at(client, done["video_url"])
    assert gif.n_frames == 4
    bad = client.post("/api/text-to-video/generate", json={"prompt": "a cat walking in a garden"})
    assert bad.status_code == 422 and "names one digit, or two" in bad.json()["detail"]


def test_tiny_stable_diffusion_through_the_real_loader(client):
    started = client.post("/api/text-to-image/generate", json={"prompt": "a photo of a red cat", "model_id": "tiny-sd",
                                                               "width": 32, "height": 32, "num_inference_steps": 3,
                                                               "seed": 4, "negative_prompt": "blurry"})
    assert started.status_code == 202, started.text
    done = wait_for(client, started.json()["task_id"])
    assert done["status"] == "completed", done
    assert image_at(client, done["image_url"]).size == (32, 32)
    transformed = client.post("/api/image-to-image/generate", files={"image": ("s.png", png((32, 32)), "image/png")},
                              data={"prompt": "a blue dog", "model_id": "tiny-sd", "strength": "0.5",
                                    "num_inference_steps": "4"})
    done = wait_for(client, transformed.json()["task_id"])
    assert done["status"] == "completed" and image_at(client, done["image_url"]).size == (32, 32), done
    video = client.post("/api/text-to-video/generate", json={"prompt": "a cat", "model_id": "tiny-sd"})
    assert video.status_code == 422 and "text-to-image model" in video.json()["detail"]


@pytest.mark.parametrize("path", ["/outputs/images/../../kiln.db", "/outputs/images/%2e%2e/%2e%2e/kiln.db",
                                  "/outputs/images/..%2f..%2fkiln.db", "/outputs/videos/nothing.mp4"])
def test_output_traversal_is_refused(client, server, path):
    assert (server.settings.home_dir / "kiln.db").exists() or True
    response = client.get(path)
    assert response.status_code == 404, (path, response.status_code)


def test_denoising_progress_goes_out_on_the_events_websocket(client):
    from tests.bentos.tasks.test_events_socket import receive_until

    with client.websocket_connect("/ws/events") as ws:
        assert ws.receive_json()["type"] == "connected"
        task_id = client.post("/api/text-to-image/generate", json={"prompt": "a 9", "num_inference_steps": 6}).json()["task_id"]
        seen = receive_until(ws, lambda m: m["type"] == "task_status" and m["data"]["task_id"] == task_id
                             and m["data"]["status"] == "completed", limit=400)
    steps = [m["data"]["metrics"]["step"] for m in seen if m["type"] == "task_status"
             and m["data"]["task_id"] == task_id and "step" in (m["data"].get("metrics") or {})]
    assert steps == list(range(1, 7)), steps


def test_digits_text_to_image_runs_in_the_batched_lane_while_long_work_holds_the_default_one(client, server):
    from kiln.tasks.records import TaskRecords

    records = TaskRecords(server.client.app.state.access.database)
    blockers = [client.post("/tasks", json={"title": f"hold {i}", "task_type": "wait",
                                            "parameters": {"seconds": 30, "steps": 300}}).json()["id"] for i in range(2)]
    try:
        made = [client.post("/api/text-to-image/generate", json={"prompt": f"a {d}", "num_inference_steps": 2,
                                                                 "seed": d}).json()["task_id"] for d in range(3)]
        assert all(wait_for(client, task_id)["status"] == "completed" for task_id in made)
        assert {records.get(task_id).lane for task_id in made} == {"batched"}
        assert all(records.get(task_id).status == "running" for task_id in blockers)  # the default lane is still held
        tiny = client.post("/api/text-to-image/generate", json={"prompt": "a 1", "model_id": "tiny-sd"}).json()
        assert records.get(tiny["task_id"]).lane == "default"  # a pipeline without a batcher holds its thread
    finally:
        for task_id in blockers:
            client.delete(f"/tasks/{task_id}")
