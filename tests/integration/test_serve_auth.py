"""``kiln serve`` with access control on, as a real BentoML server over HTTP (no models needed), and the
production refusal of a default JWT secret."""

import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.servers import KILN, running

pytestmark = [pytest.mark.slow, pytest.mark.integration]

ADMIN_KEY = "integration-admin-key-0123456789"


def serve_env(home: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KILN_")}
    return {**env, "KILN_HOME": str(home), **extra}


@pytest.fixture(scope="module")
def secured_server(tmp_path_factory):
    home = tmp_path_factory.mktemp("serve-auth")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = home / "serve.log"
    env = serve_env(home, KILN_ENABLE_AUTH="true", KILN_API_KEYS=json.dumps({"admin": ADMIN_KEY}),
                    KILN_RATE_LIMIT_STATUS="50/minute", KILN_ALLOW_REGISTRATION="true")
    with running([str(KILN), "serve", "--host", "127.0.0.1", "--port", str(port)], f"{url}/health", log_path, env):
        yield url, log_path


def test_routes_follow_the_permission_table_over_http(secured_server):
    url, log_path = secured_server
    health = httpx.get(f"{url}/health")
    assert health.status_code == 200 and health.headers["x-frame-options"] == "DENY"
    denied = httpx.get(f"{url}/info")
    assert denied.status_code == 401 and denied.json()["success"] is False  # seed 000's format under /
    assert denied.json()["request_id"] == denied.headers["x-request-id"]
    info = httpx.get(f"{url}/info", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert info.status_code == 200 and info.headers["x-ratelimit-limit"] == "50"
    assert int(info.headers["x-ratelimit-remaining"]) < 50
    registered = httpx.post(f"{url}/auth/register", json={"username": "ivy", "password": "correct horse"})
    assert registered.status_code == 201
    tokens = httpx.post(f"{url}/auth/login", json={"username": "ivy", "password": "correct horse"}).json()
    me = httpx.get(f"{url}/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.json()["username"] == "ivy"
    forbidden = httpx.get(f"{url}/api/v1/admin/api-keys", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert forbidden.status_code == 403 and forbidden.json()["error_type"] == "authorization_error"
    keys = httpx.get(f"{url}/api/v1/admin/api-keys", headers={"X-API-Key": ADMIN_KEY})
    assert keys.status_code == 200 and set(keys.json()) == {"admin", "kiln-worker"}  # + this machine's task workers' key
    assert ADMIN_KEY not in log_path.read_text() and "correct horse" not in log_path.read_text()
    # BentoML's own routes, answered before the API app, follow their table too
    assert httpx.get(f"{url}/metrics").status_code == 401
    metrics = httpx.get(f"{url}/metrics", headers={"X-API-Key": ADMIN_KEY})
    assert metrics.status_code == 200 and "# TYPE" in metrics.text
    assert httpx.get(f"{url}/livez").status_code == 200 and httpx.get(f"{url}/docs.json").status_code == 200


def test_production_refuses_to_start_without_a_secret(tmp_path):
    result = subprocess.run([str(KILN), "serve", "--port", str(free_port())], capture_output=True, text=True,
                            timeout=120, env=serve_env(tmp_path, KILN_ENVIRONMENT="production"))
    assert result.returncode != 0
    assert "KILN_JWT_SECRET" in result.stdout + result.stderr
