"""No way in from a browser: Host headers outside the trusted hosts get 400 (DNS rebinding), and
state-changing requests whose Origin or Referer is another site get 403 (cross-site requests)."""

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from bentos.api import create_app
from kiln.settings import Settings
from tests.bentos.fakes import fake_server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = fake_server(tmp_path_factory.mktemp("browser-guard"), cors_origins=["https://app.example"])
    yield server
    server.close()


def test_default_hosts_are_the_bind_address_and_loopback_only(tmp_path, monkeypatch):
    # The product default, without the test suite's KILN_ALLOWED_HOSTS=["testserver"].
    monkeypatch.delenv("KILN_ALLOWED_HOSTS", raising=False)
    settings = Settings(home=tmp_path, _env_file=None, bind_host="10.1.2.3")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        admin = {"X-API-Key": (tmp_path / "admin.key").read_text().strip()}
        rebound = client.post("/api/v1/admin/api-keys", json={"user_id": "rebound", "permissions": ["read"]},
                              headers={"Host": "evil.example", **admin})
        assert rebound.status_code == 400 and "Invalid host header" in rebound.text
        for host in ("localhost:8000", "127.0.0.1:8000", "[::1]:8000", "10.1.2.3:8000", "LOCALHOST"):
            assert client.get("/openapi.json", headers={"Host": host}).status_code == 200, host
        assert client.get("/openapi.json", headers={"Host": "testserver"}).status_code == 400


def test_configured_hosts_are_answered_besides_loopback(tmp_path):
    with TestClient(create_app(Settings(home=tmp_path, allowed_hosts=["api.example.com"]))) as client:
        assert client.get("/openapi.json", headers={"Host": "api.example.com"}).status_code == 200
        assert client.get("/openapi.json", headers={"Host": "localhost"}).status_code == 200


def test_cross_site_state_changing_request_is_refused(server):
    client, admin = server.client, server.admin
    evil = client.post("/server/optimize", headers={"Origin": "https://evil.example", **admin})
    assert evil.status_code == 403 and "evil.example" in evil.json()["error"]
    by_referer = client.post("/models/manage?action=unload&model_name=adder",
                             headers={"Referer": "https://evil.example/page", **admin})
    assert by_referer.status_code == 403
    sandboxed = client.post("/server/optimize", headers={"Origin": "null", **admin})
    assert sandboxed.status_code == 403


def test_same_origin_allowed_origins_and_reads_pass(server):
    client, admin = server.client, server.admin
    assert client.post("/server/optimize", headers={"Origin": "http://testserver", **admin}).status_code == 200
    assert client.post("/server/optimize", headers={"Origin": "https://app.example", **admin}).status_code == 200
    assert client.post("/server/optimize", headers={"Referer": "http://testserver/docs", **admin}).status_code == 200
    assert client.post("/server/optimize", headers=admin).status_code == 200  # no Origin: curl, SDKs
    # A cross-site read is CORS's business (the browser hides the answer), not refused here.
    assert client.get("/health", headers={"Origin": "https://evil.example"}).status_code == 200


def test_cross_site_websocket_handshake_is_refused(server):
    with pytest.raises(WebSocketDisconnect):
        with server.client.websocket_connect("/ws/events", headers={"Origin": "https://evil.example"}) as socket:
            socket.receive_json()


def test_in_cluster_names_and_probes_are_answered(tmp_path, monkeypatch):
    import socket

    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from bentos.api.http.security import SecurityMiddleware

    monkeypatch.delenv("KILN_ALLOWED_HOSTS", raising=False)
    settings = Settings(home=tmp_path, _env_file=None, bind_host="0.0.0.0", task_server_url="http://kiln-gateway:8000")
    assert {"kiln-gateway", socket.gethostname().lower()} <= set(settings.trusted_hosts)
    up = Starlette(routes=[Route(path, lambda request: PlainTextResponse("up")) for path in ("/livez", "/keys")])
    client = TestClient(SecurityMiddleware(up, settings))
    assert client.get("/livez", headers={"Host": "10.244.0.7:8000"}).status_code == 200  # a probe to the pod IP
    assert client.get("/keys", headers={"Host": "10.244.0.7:8000"}).status_code == 400
    assert client.get("/keys", headers={"Host": "kiln-gateway:8000"}).status_code == 200
