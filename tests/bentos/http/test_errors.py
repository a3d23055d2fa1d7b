"""Each API document's error format under the path prefixes its surfaces declare, with a request id everywhere."""

import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from bentos.api.http import errors
from kiln.errors import NotFound


@pytest.fixture(scope="module")
def client():
    app = FastAPI()

    @app.get("/{path:path}")
    def fail(path: str):
        raise NotFound(f"no {path}", {"what": path})

    errors.install(app)
    return TestClient(app)


def test_inference_is_the_default(client):
    body = client.get("/models/x").json()
    assert body["success"] is False and body["error"] == "no models/x" and body["detail"] == {"what": "models/x"}


def test_multimedia_under_api(client):
    assert client.get("/api/text-to-image/status/1").json()["detail"] == "no api/text-to-image/status/1"
    assert client.get("/api/v10/x").json()["detail"] == "no api/v10/x"  # a prefix is a whole path segment


def test_autoserve_under_auth_and_users(client):
    body = client.get("/auth/x", headers={"X-Request-ID": "abc"}).json()
    assert body["error"]["code"] == "NOT_FOUND" and body["error"]["request_id"] == "abc" and body["error"]["timestamp"]
    assert client.get("/users/me/x").json()["error"]["message"] == "no users/me/x"


def test_ttskit_under_api_v1(client):
    response = client.get("/api/v1/engines/nope")
    body = response.json()
    assert body["error_type"] == "not_found" and body["detail"] == "no api/v1/engines/nope"
    assert body["request_id"] == response.headers["X-Request-ID"]


def test_openai_under_v1(client):
    body = client.get("/v1/audio/x").json()
    assert body["error"]["type"] == "invalid_request_error" and body["error"]["code"] == "not_found"


def test_every_declared_prefix_has_a_route(tmp_path):
    from bentos.api import create_app
    from bentos.api.http.routes import RouteIndex
    from bentos.api.surfaces import error_format_prefixes
    from kiln.settings import Settings

    templates = [template for _, _, template in RouteIndex().entries(create_app(Settings(home=tmp_path)))]
    for prefix in error_format_prefixes():
        assert any(t == prefix or t.startswith(prefix.rstrip("/") + "/") for t in templates), f"no route serves {prefix}"
