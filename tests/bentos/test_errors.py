"""Each seed's error format under its own paths, with a request id everywhere."""

import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from bentos.api import errors
from kiln.errors import NotFound


@pytest.fixture(scope="module")
def client():
    app = FastAPI()
    errors.install(app)

    @app.get("/{path:path}")
    def fail(path: str):
        raise NotFound(f"no {path}", {"what": path})

    return TestClient(app)


def test_seed000_default(client):
    body = client.get("/models/x").json()
    assert body["success"] is False and body["error"] == "no models/x" and body["detail"] == {"what": "models/x"}


def test_seed001_under_api(client):
    body = client.get("/api/text-to-image/status/1").json()
    assert body["detail"] == "no api/text-to-image/status/1"


def test_seed002_paths(client):
    body = client.get("/tasks/9", headers={"X-Request-ID": "abc"}).json()
    assert body["error"]["code"] == "NOT_FOUND" and body["error"]["request_id"] == "abc"


def test_seed003_under_api_v1(client):
    response = client.get("/api/v1/engines/nope")
    body = response.json()
    assert body["error_type"] == "not_found" and body["detail"] == "no api/v1/engines/nope"
    assert body["request_id"] == response.headers["X-Request-ID"]


def test_seed004_device_paths(client):
    body = client.get("/api/device/capabilities/gpu-5").json()
    assert body["success"] is False and body["error"]["code"] == "NOT_FOUND"
