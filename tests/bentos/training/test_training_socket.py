"""``WS /ws/training`` and ``/api/ws/training``: training tasks' events from the event log become seed 001's
progress/status/error messages; other task types and other tasks (with ?task_id=) are left out. The events
here are written to the log as a training task's follower writes them (tests/pipelines/test_user_training.py
runs the real Dagster path that produces them)."""

import time

import pytest

from kiln.tasks import events
from tests.bentos.fakes import fake_server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = fake_server(tmp_path_factory.mktemp("training-socket"))
    yield server
    server.close()


def emit(server, task_id, status, task_type="training", **extra):
    data = {"task_id": task_id, "status": status, "progress": extra.pop("progress", 0.0), "message": None,
            "task_type": task_type, "error": extra.pop("error", None), "timestamp": "t", **extra}
    events.publish(server.client.app.state.access.database, "task_status", data, task_id, None)


def receive(ws, count):
    return [ws.receive_json() for _ in range(count)]


@pytest.mark.parametrize("path", ["/ws/training", "/api/ws/training"])
def test_progress_status_and_error_messages(server, path):
    with server.client.websocket_connect(path) as ws:
        assert ws.receive_json()["type"] == "connected"
        time.sleep(0.5)  # the tail starts at the newest event
        emit(server, "t1", "pending")
        emit(server, "other", "running", task_type="wait", progress=50.0)  # not a training: left out
        emit(server, "t1", "running", progress=40.0, metrics={"loss": 0.5, "learning_rate": 0.001, "current_step": 4,
                                                               "total_steps": 10, "metrics": {"accuracy": 0.9}})
        emit(server, "t1", "failed", error="Dagster run r ended FAILURE: out of memory")
        seen = receive(ws, 5)
    assert [m["type"] for m in seen] == ["status", "status", "progress", "status", "error"]
    assert seen[0]["data"] == {"task_id": "t1", "status": "pending", "message": None}
    progress = seen[2]["data"]
    assert progress["task_id"] == "t1" and progress["progress"] == 40.0
    assert progress["metrics"] == {"loss": 0.5, "learning_rate": 0.001, "current_step": 4, "total_steps": 10, "accuracy": 0.9}
    assert seen[4]["data"] == {"task_id": "t1", "message": "Dagster run r ended FAILURE: out of memory"}


def test_one_task_with_task_id(server):
    with server.client.websocket_connect("/ws/training?task_id=mine") as ws:
        assert ws.receive_json()["data"]["task_id"] == "mine"
        time.sleep(0.5)
        emit(server, "someone-else", "running", progress=10.0, metrics={"loss": 1.0})
        emit(server, "mine", "completed", progress=100.0)
        seen = receive(ws, 1)
    assert seen == [{"type": "status", "data": {"task_id": "mine", "status": "completed", "message": None}}]


def test_auth_on_needs_a_token(tmp_path):
    from starlette.websockets import WebSocketDisconnect

    server = fake_server(tmp_path, enable_auth=True, api_keys={"alice": "alice-key-0123456789"})
    try:
        with pytest.raises(WebSocketDisconnect):
            with server.client.websocket_connect("/ws/training") as ws:
                ws.receive_json()
        with server.client.websocket_connect("/ws/training?token=alice-key-0123456789") as ws:
            assert ws.receive_json()["type"] == "connected"
    finally:
        server.close()
