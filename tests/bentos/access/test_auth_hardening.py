"""Auth defaults when auth is on: registration closed unless opted in, lockout per (IP, account) so the
right credential still gets in, and conflicting credentials refused."""

import base64

from starlette.testclient import TestClient

from bentos.api import create_app
from kiln.settings import Settings

ADMIN_KEY = "admin-secret-key-0123456789"
NEW_USER = {"username": "newcomer", "password": "correct horse"}


def auth_client(tmp_path, **overrides) -> TestClient:
    settings = Settings(home=tmp_path, enable_auth=True, api_keys={"admin": ADMIN_KEY}, **overrides)
    return TestClient(create_app(settings), raise_server_exceptions=False, client=("10.0.0.1", 50000))


def basic(username, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


def test_registration_is_closed_by_default_when_auth_is_on(tmp_path):
    with auth_client(tmp_path / "default") as client:
        for path in ("/auth/register", "/users/register"):
            closed = client.post(path, json=NEW_USER)
            assert closed.status_code == 403 and "KILN_ALLOW_REGISTRATION" in closed.text
    with auth_client(tmp_path / "open", allow_registration=True, registration_permissions=["read"]) as client:
        opened = client.post("/auth/register", json=NEW_USER)
        assert opened.status_code == 201 and opened.json()["permissions"] == ["read"]
    with TestClient(create_app(Settings(home=tmp_path / "off"))) as client:  # auth off: nothing to protect
        assert client.post("/auth/register", json=NEW_USER).status_code == 201


def test_lockout_is_per_address_and_account(tmp_path):
    with auth_client(tmp_path, rate_limit_auth="3/minute") as client:
        client.app.state.access.register("alice", "alice-password", permissions=["read"])
        client.app.state.access.register("bob", "bob-password", permissions=["read"])
        guesses = [client.post("/auth/login", json={"username": "alice", "password": f"guess-{n}"}).status_code
                   for n in range(4)]
        assert guesses == [401, 401, 401, 429]
        locked = client.post("/auth/login", json={"username": "alice", "password": "alice-password"})
        assert locked.status_code == 429 and "locked out" in locked.text  # that pair itself is locked
        assert client.get("/auth/profile", headers=basic("alice", "alice-password")).status_code == 429
        # Another account from the same address gets in, by login and by Basic credentials.
        assert client.post("/auth/login", json={"username": "bob", "password": "bob-password"}).status_code == 200
        assert client.get("/auth/profile", headers=basic("bob", "bob-password")).status_code == 200
        # Bad keys lock only unverified keys: the right key still gets in.
        bad_keys = [client.get("/auth/profile", headers={"X-API-Key": f"wrong-key-{n}"}).status_code for n in range(4)]
        assert bad_keys == [401, 401, 401, 429]
        assert client.get("/api/v1/rate-limit", headers={"X-API-Key": ADMIN_KEY}).status_code == 200
        # The same account from another address gets in too (the same app, so the same counts).
        elsewhere = TestClient(client.app, raise_server_exceptions=False, client=("10.0.0.2", 50000))
        assert elsewhere.post("/auth/login", json={"username": "alice", "password": "alice-password"}).status_code == 200


def test_conflicting_credentials_are_401(tmp_path):
    with auth_client(tmp_path) as client:
        conflicting = client.get("/api/v1/rate-limit", headers={"X-API-Key": ADMIN_KEY, "Authorization": "Bearer garbage"})
        assert conflicting.status_code == 401
        other_scheme = client.get("/api/v1/rate-limit", headers={"X-API-Key": ADMIN_KEY, "Authorization": "Digest x"})
        assert other_scheme.status_code == 401
        same = client.get("/api/v1/rate-limit", headers={"X-API-Key": ADMIN_KEY, "Authorization": f"Bearer {ADMIN_KEY}"})
        assert same.status_code == 200
