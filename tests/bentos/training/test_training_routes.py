"""Seed 001's Training APIs on fakes: validation 422s naming the field, 404 for a base model the store lacks
(listing what it holds), unknown tasks, status of a started training, and stop (a waiting training ends
cancelled at once; a finished one is a 409). No worker runs here: the Dagster path is tests/pipelines."""

import pytest

from tests.bentos.fakes import fake_server

DIGITS = {"model_type": "digits", "base_model": "digits-mlp", "output_dir": "/models/my-digits", "epochs": 2}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = fake_server(tmp_path_factory.mktemp("training"))
    yield server
    server.close()


@pytest.fixture(scope="module")
def client(server):
    return server.client


def test_start_answers_a_task_id_and_the_store_name_it_took_from_output_dir(client):
    response = client.post("/api/training/start", json=DIGITS)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["task_id"] and body["model_name"] == "my-digits"
    assert "last segment" in body["message"]
    task = client.get(f"/tasks/{body['task_id']}").json()
    assert task["task_type"] == "training" and task["parameters"]["epochs"] == 2


@pytest.mark.parametrize(("change", "field"), [
    ({"model_type": "resnet"}, "model_type"),
    ({"epochs": 0}, "epochs"),
    ({"batch_size": -1}, "batch_size"),
    ({"learning_rate": 0}, "learning_rate"),
    ({"save_steps": -5}, "save_steps"),
    ({"output_dir": "/models/../"}, "output_dir"),
    ({"output_dir": "/models/bad name!"}, "output_dir"),
])
def test_bad_parameters_are_422_naming_the_field(client, change, field):
    response = client.post("/api/training/start", json={**DIGITS, **change})
    assert response.status_code == 422, response.text
    assert field in response.json()["detail"]


def test_a_missing_field_is_422_naming_it(client):
    body = {k: v for k, v in DIGITS.items() if k != "base_model"}
    response = client.post("/api/training/start", json=body)
    assert response.status_code == 422 and "base_model" in response.json()["detail"]


def test_an_unknown_base_model_is_404_listing_what_there_is(client):
    response = client.post("/api/training/start", json={**DIGITS, "base_model": "resnet50"})
    assert response.status_code == 404
    assert "resnet50" in response.json()["detail"] and "digits-mlp" in response.json()["detail"]
    text = {**DIGITS, "model_type": "text_classifier", "base_model": "resnet50", "dataset_path": "x.csv"}
    response = client.post("/api/training/start", json=text)
    assert response.status_code == 404 and "holds" in response.json()["detail"]


def test_a_text_classifier_needs_a_dataset_the_caller_has(server, client):
    from kiln.store import ModelStore

    store = ModelStore(server.settings.model_store_dir)  # an encoder in the store, as the pipeline leaves minilm
    with store.stage("encoder", "f" * 64, "sentence-embedding") as staging:
        (staging / "config.json").write_text("{}")
    text = {**DIGITS, "model_type": "text_classifier", "base_model": "encoder"}
    response = client.post("/api/training/start", json=text)
    assert response.status_code == 422 and "dataset_path" in response.json()["detail"]
    response = client.post("/api/training/start", json={**text, "dataset_path": "nothing-uploaded.csv"})
    assert response.status_code == 422 and "dataset_path" in response.json()["detail"]
    upload = client.post("/files/upload", files={"file": ("reviews.csv", b"text,label\ngood,pos\nbad,neg\n", "text/csv")})
    assert upload.status_code == 201, upload.text
    response = client.post("/api/training/start", json={**text, "dataset_path": upload.json()["id"]})
    assert response.status_code == 202, response.text


def test_status_of_a_waiting_training(client):
    task_id = client.post("/api/training/start", json=DIGITS).json()["task_id"]
    status = client.get(f"/api/training/status/{task_id}")
    assert status.status_code == 200, status.text
    body = status.json()
    assert body["task_id"] == task_id and body["status"] == "pending" and body["progress"] == 0
    assert body["total_epochs"] == 2 and body["current_step"] == 0 and body["model_name"] == "my-digits"


def test_unknown_tasks_are_404(client):
    assert client.get("/api/training/status/no-such-task").status_code == 404
    assert client.post("/api/training/stop/no-such-task").status_code == 404
    other = client.post("/tasks", json={"title": "w", "task_type": "wait", "parameters": {}}).json()["id"]
    response = client.get(f"/api/training/status/{other}")  # a task, but not a training
    assert response.status_code == 404 and "training" in response.json()["detail"]


def test_stop_cancels_a_waiting_training_and_a_second_stop_is_409(client):
    task_id = client.post("/api/training/start", json=DIGITS).json()["task_id"]
    stopped = client.post(f"/api/training/stop/{task_id}")
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["status"] == "cancelled"
    assert client.get(f"/api/training/status/{task_id}").json()["status"] == "cancelled"
    again = client.post(f"/api/training/stop/{task_id}")
    assert again.status_code == 409 and "finished" in again.json()["detail"]
