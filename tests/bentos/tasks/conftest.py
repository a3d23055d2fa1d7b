import time

import pytest

from tests.bentos.fakes import fake_server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = fake_server(tmp_path_factory.mktemp("tasks"))
    server.start_task_workers(threads=2)
    yield server
    server.close()


@pytest.fixture(scope="module")
def client(server):
    return server.client


def wait_for(client, task_id, statuses=("completed", "failed", "cancelled"), timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        task = client.get(f"/tasks/{task_id}").json()
        if task["status"] in statuses:
            return task
        assert time.monotonic() < deadline, f"task still {task['status']}: {task}"
        time.sleep(0.05)


def upload(client, name, data, content_type="application/octet-stream", **headers):
    response = client.post("/files/upload", files={"file": (name, data, content_type)}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()
