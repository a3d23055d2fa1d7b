"""Seed 001's LLM fine-tuning routes on fakes: start validates (422 naming the field, 404 for a base model the
store lacks, with how to bring one), and test/merge need a completed LoRA task of the caller (404/409). The
training, test and merge themselves run in tests/unit/test_llm_finetuning.py."""

import pytest

from kiln.store import ModelStore
from tests.bentos.fakes import fake_server

LORA = {"base_model": "tiny-llama", "dataset_path": "instructions.jsonl", "output_dir": "/models/lora_adapter"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = fake_server(tmp_path_factory.mktemp("llm"))
    yield server
    server.close()


@pytest.fixture(scope="module")
def client(server):
    return server.client


def test_a_base_model_the_store_lacks_is_404_saying_how_to_bring_one(client):
    for route in ("/api/llm-finetuning/lora/start", "/api/llm-finetuning/qlora/start"):
        response = client.post(route, json={**LORA, "base_model": "llama-2-7b"})
        assert response.status_code == 404, response.text
        assert "llama-2-7b" in response.json()["detail"] and "source: path" in response.json()["detail"]


@pytest.mark.parametrize(("change", "field"), [
    ({"lora_r": 0}, "lora_r"), ({"lora_dropout": 1.5}, "lora_dropout"), ({"max_length": 2}, "max_length"),
    ({"gradient_accumulation_steps": 0}, "gradient_accumulation_steps"), ({"dataset_path": ""}, "dataset_path"),
])
def test_bad_parameters_are_422_naming_the_field(client, change, field):
    response = client.post("/api/llm-finetuning/lora/start", json={**LORA, **change})
    assert response.status_code == 422 and field in response.json()["detail"]


def test_lora_and_qlora_start_tasks_and_test_needs_them_completed(server, client):
    store = ModelStore(server.settings.model_store_dir)
    with store.stage("tiny-llama", "b" * 64, "text-generation") as staging:
        (staging / "config.json").write_text("{}")
    upload = client.post("/files/upload", files={"file": ("instructions.jsonl", b'{"prompt": "a", "completion": "b"}\n',
                                                          "application/json")})
    assert upload.status_code == 201, upload.text
    started = client.post("/api/llm-finetuning/qlora/start", json=LORA)
    assert started.status_code == 202, started.text
    task_id = started.json()["task_id"]
    task = client.get(f"/tasks/{task_id}").json()
    assert task["parameters"]["model_type"] == "causal_lm" and task["parameters"]["quantization"] == "4bit"
    assert task["parameters"]["gradient_accumulation_steps"] == 4
    waiting = client.post("/api/llm-finetuning/test", json={"task_id": task_id, "prompt": "hi"})
    assert waiting.status_code == 409 and "pending" in waiting.json()["detail"]
    merge = client.post("/api/llm-finetuning/merge", json={"task_id": task_id, "output_path": "/models/merged"})
    assert merge.status_code == 409
    merge = client.post("/tasks", json={"title": "m", "task_type": "llm_merge",  # the task type checks its output too
                                        "parameters": {"task_id": task_id, "output_path": "/models/../"}})
    assert merge.status_code == 422 and "output_path" in merge.text


def test_unknown_tasks_and_bad_bodies(client):
    assert client.post("/api/llm-finetuning/test", json={"task_id": "nope", "prompt": "hi"}).status_code == 404
    assert client.post("/api/llm-finetuning/merge", json={"task_id": "nope", "output_path": "x"}).status_code == 404
    response = client.post("/api/llm-finetuning/test", json={"task_id": "nope", "prompt": "hi", "max_tokens": 0})
    assert response.status_code == 422 and "max_tokens" in response.json()["detail"]
    digits = client.post("/api/training/start", json={"model_type": "digits", "base_model": "digits-mlp",
                                                      "output_dir": "d"}).json()["task_id"]
    response = client.post("/api/llm-finetuning/test", json={"task_id": digits, "prompt": "hi"})
    assert response.status_code == 404 and "LLM" in response.json()["detail"]
