"""The access-control HTTP surface on create_app(): the seeds' auth and admin examples, error formats,
rate limits, security headers, body limits, hosts, CORS, and no secret in logs or responses."""

import base64
import logging

import pytest
from starlette.testclient import TestClient

from bentos.api import create_app
from kiln.settings import Settings

ADMIN_KEY = "admin-secret-key-0123456789"
USER_KEY = "user1-secret-key-0123456789"
READONLY_KEY = "readonly-key-0123456789"


def make_client(tmp_path, **overrides) -> TestClient:
    overrides.setdefault("allow_registration", True)  # these tests register users; the default is closed
    settings = Settings(
        home=tmp_path, enable_auth=True,
        api_keys={"admin": ADMIN_KEY, "user1": USER_KEY}, **overrides,
    )
    client = TestClient(create_app(settings), raise_server_exceptions=False)
    client.__enter__()
    access = client.app.state.access
    if not any(k.user_id == "readonly_user" for k in access.list_keys()):
        access.create_key("readonly_user", ["read"], key=READONLY_KEY)
    return client


@pytest.fixture
def client(tmp_path):
    client = make_client(tmp_path)
    yield client
    client.__exit__(None, None, None)


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_seed002_user_flow(client):
    registered = client.post("/users/register", json={
        "username": "alice", "password": "correct horse", "email": "alice@example.com", "full_name": "Alice A"})
    assert registered.status_code == 201
    assert {"id", "username", "email", "full_name", "is_active", "created_at"} <= set(registered.json())
    login = client.post("/auth/login", json={"username": "alice", "password": "correct horse"})
    assert login.status_code == 200
    tokens = login.json()
    assert set(tokens) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert tokens["token_type"] == "bearer" and tokens["expires_in"] == 3600
    me = client.get("/users/me", headers=bearer(tokens["access_token"])).json()
    assert me["username"] == "alice" and me["email"] == "alice@example.com" and "updated_at" in me
    updated = client.put("/users/me", headers=bearer(tokens["access_token"]), json={"full_name": "Alice B"})
    assert updated.json()["full_name"] == "Alice B"
    refreshed = client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).json()
    assert set(refreshed) == {"access_token", "token_type", "expires_in"}
    assert client.get("/users/me", headers=bearer(refreshed["access_token"])).status_code == 200
    out = client.post("/auth/logout", headers=bearer(tokens["access_token"]))
    assert out.json() == {"message": "Successfully logged out"}
    for token in (tokens["access_token"], refreshed["access_token"]):
        denied = client.get("/users/me", headers={**bearer(token), "X-Request-ID": "req-42"})
        assert denied.status_code == 401
        error = denied.json()["error"]  # seed 002's error format
        assert error["code"] == "UNAUTHORIZED" and "revoked" in error["message"] and error["request_id"] == "req-42"
    assert client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 401


def test_seed000_register_form_login_profile_and_generated_key(client):
    assert client.post("/auth/register", json={"username": "bob", "password": "correct horse"}).status_code == 201
    assert client.post("/auth/register", json={"username": "bob", "password": "correct horse"}).status_code == 409
    login = client.post("/auth/login", data={"username": "bob", "password": "correct horse"})  # OAuth2 form
    assert login.status_code == 200
    token = login.json()["access_token"]
    assert client.get("/auth/profile", headers=bearer(token)).json()["username"] == "bob"
    generated = client.post("/auth/generate-key", headers=bearer(token))
    assert generated.status_code == 201
    key = generated.json()["api_key"]
    assert client.get("/auth/profile", headers={"X-API-Key": key}).json()["username"] == "bob"
    wrong = client.post("/auth/login", json={"username": "bob", "password": "wrong horse"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "UNAUTHORIZED"
    assert client.post("/auth/login", json={"username": "bob"}).status_code == 422
    assert client.post("/auth/login", content=b"{not json", headers={"content-type": "application/json"}).status_code == 400


def test_seed003_admin_key_management(client):
    admin = bearer(ADMIN_KEY)
    created = client.post("/api/v1/admin/api-keys", headers=admin,
                          json={"user_id": "new_user", "api_key": "new-secret-key", "permissions": ["read", "write"]})
    assert created.status_code == 201
    assert created.json()["message"] == "API key created successfully for user 'new_user'"
    assert "new-secret-key" not in created.text
    listing = client.get("/api/v1/admin/api-keys", headers=admin)
    assert listing.json()["new_user"]["permissions"] == ["read", "write"]
    assert listing.json()["admin"]["permissions"] == ["read", "write", "admin"]
    assert ADMIN_KEY not in listing.text and "new-secret-key" not in listing.text
    me = client.get("/api/v1/admin/users/me", headers=bearer("new-secret-key")).json()
    assert me["user_id"] == "new_user" and me["permissions"] == ["read", "write"] and me["api_key"].endswith("...")
    updated = client.put("/api/v1/admin/api-keys/new_user", headers=admin,
                         json={"api_key": "updated-secret-key", "permissions": ["read", "write", "admin"]})
    assert updated.json()["permissions"] == ["read", "write", "admin"]
    assert client.get("/api/v1/admin/api-keys", headers=bearer("updated-secret-key")).status_code == 200
    assert client.get("/api/v1/admin/api-keys", headers=bearer("new-secret-key")).status_code == 401
    assert client.delete("/api/v1/admin/api-keys/new_user", headers=admin).status_code == 200
    gone = client.get("/api/v1/admin/api-keys", headers=bearer("updated-secret-key"))
    assert gone.status_code == 401
    assert gone.json()["error_type"] == "authentication_error" and gone.json()["detail"] == "Invalid API key"
    assert client.delete("/api/v1/admin/api-keys/new_user", headers=admin).status_code == 404
    forbidden = client.get("/api/v1/admin/api-keys", headers=bearer(USER_KEY))
    assert forbidden.status_code == 403 and forbidden.json()["error_type"] == "authorization_error"
    bad = client.post("/api/v1/admin/api-keys", headers=admin, json={"user_id": "x", "permissions": ["root"]})
    assert bad.status_code == 422
    generated = client.post("/api/v1/admin/api-keys", headers=admin, json={"user_id": "gen", "permissions": ["read"]})
    assert client.get("/api/v1/rate-limit", headers=bearer(generated.json()["api_key"])).status_code == 200
    events = client.get("/api/v1/admin/audit", headers=admin).json()["events"]
    assert {"api_key_created", "api_key_updated", "api_key_deleted", "access_denied", "admin_action"} <= {
        e["event"] for e in events}


def test_seed004_credentials_x_api_key_bearer_and_basic(client):
    client.post("/auth/register", json={"username": "carl", "password": "correct horse"})
    basic = base64.b64encode(b"carl:correct horse").decode()
    for headers in ({"X-API-Key": USER_KEY}, bearer(USER_KEY), {"Authorization": f"Basic {basic}"}):
        assert client.get("/api/v1/rate-limit", headers=headers).status_code == 200, headers
    assert client.get("/api/v1/rate-limit").status_code == 401
    assert client.get("/api/v1/rate-limit", headers={"Authorization": "Basic Y2FybDpub3BlMTIzNA=="}).status_code == 401


def test_rate_limit_headers_and_429_under_a_burst(tmp_path):
    client = make_client(tmp_path, rate_limit_status="5/minute", rate_limit_auth="3/minute")
    seen = []
    for _ in range(5):
        response = client.get("/api/v1/rate-limit", headers=bearer(USER_KEY))
        assert response.status_code == 200
        seen.append(int(response.headers["X-RateLimit-Remaining"]))
        assert response.headers["X-RateLimit-Limit"] == "5" and int(response.headers["X-RateLimit-Reset"]) > 0
    assert seen == [4, 3, 2, 1, 0]
    limited = client.get("/api/v1/rate-limit", headers=bearer(USER_KEY))
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert limited.json()["error_type"] == "rate_limit_error"
    other = client.get("/api/v1/rate-limit", headers=bearer(ADMIN_KEY))  # another key, its own window
    assert other.status_code == 200
    assert other.json()["usage"]["status"]["used"] == 1 and other.json()["limits"]["status"] == "5/minute"
    assert "X-RateLimit-Limit" not in client.get("/openapi.json").headers  # docs and /health are exempt
    attempts = [client.post("/auth/login", json={"username": "x", "password": "guess-1234"}).status_code
                for _ in range(4)]
    assert attempts == [401, 401, 401, 429]  # password guessing is limited per (client IP, account)
    guess = client.get("/api/v1/rate-limit", headers={"Authorization": "Basic " + base64.b64encode(b"x:guess-9").decode()})
    assert guess.status_code == 429  # ... also through Basic credentials on any route
    client.__exit__(None, None, None)


def test_security_headers_on_every_response(client):
    for response in (client.get("/openapi.json"), client.get("/api/v1/rate-limit"), client.get("/nowhere")):
        headers = response.headers
        assert headers["X-Content-Type-Options"] == "nosniff" and headers["X-Frame-Options"] == "DENY"
        assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
        assert "camera=()" in headers["Permissions-Policy"]
        assert float(headers["X-Process-Time"]) >= 0 and headers["X-Request-ID"]
        assert "Strict-Transport-Security" not in headers
    error = client.get("/api/v1/rate-limit", headers={"X-Request-ID": "trace-7"})
    assert error.headers["X-Request-ID"] == "trace-7" and error.json()["request_id"] == "trace-7"
    odd = client.get("/api/v1/rate-limit", headers={"X-Request-ID": "bad id\x7f"})
    assert odd.headers["X-Request-ID"] != "bad id\x7f" and odd.json()["request_id"] == odd.headers["X-Request-ID"]
    tls = TestClient(client.app, base_url="https://testserver")
    assert tls.get("/openapi.json").headers["Strict-Transport-Security"].startswith("max-age=")


@pytest.mark.parametrize("setting, plain, tls", [("tls", False, True), ("always", True, True), ("off", False, False)])
def test_hsts_follows_its_setting(tmp_path, setting, plain, tls):
    app = create_app(Settings(home=tmp_path, hsts=setting))
    for base, expected in (("http://testserver", plain), ("https://testserver", tls)):
        with TestClient(app, base_url=base) as client:
            assert ("Strict-Transport-Security" in client.get("/health").headers) is expected, (setting, base)


def test_body_size_limit_answers_413_in_the_seed_format(tmp_path):
    client = make_client(tmp_path, max_body_bytes=1000)
    big = b'{"username": "' + b"x" * 2000 + b'", "password": "p"}'
    declared = client.post("/auth/login", content=big, headers={"content-type": "application/json"})
    assert declared.status_code == 413 and declared.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"

    def chunks():  # no Content-Length: counted while read
        for _ in range(4):
            yield b"y" * 400

    streamed = client.post("/api/v1/admin/api-keys", content=chunks(),
                           headers={"content-type": "application/json", **bearer(ADMIN_KEY)})
    assert streamed.status_code == 413 and streamed.json()["error_type"] == "validation_error"
    assert client.post("/auth/login", json={"username": "x", "password": "guess-1234"}).status_code == 401
    client.__exit__(None, None, None)


def test_trusted_hosts_and_cors(tmp_path):
    client = make_client(tmp_path, allowed_hosts=["api.example.com", "*.internal"],
                         cors_origins=["https://app.example.com"])
    assert client.get("/openapi.json", headers={"Host": "api.example.com"}).status_code == 200
    assert client.get("/openapi.json", headers={"Host": "svc.internal:8000"}).status_code == 200
    wrong = client.get("/openapi.json", headers={"Host": "evil.example.org"})
    assert wrong.status_code == 400 and wrong.json()["error"] == "Invalid host header"
    preflight = client.options("/api/v1/rate-limit", headers={
        "Host": "api.example.com", "Origin": "https://app.example.com", "Access-Control-Request-Method": "GET"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://app.example.com"
    client.__exit__(None, None, None)


def test_registration_can_be_closed(tmp_path):
    client = make_client(tmp_path, allow_registration=False)
    closed = client.post("/users/register", json={"username": "zed", "password": "correct horse"})
    assert closed.status_code == 403 and closed.json()["error"]["code"] == "FORBIDDEN"
    client.__exit__(None, None, None)


def test_passwords_and_keys_never_in_logs_or_responses(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    client = make_client(tmp_path, admin_password="admin-password-77")
    password = "Sup3r-secret-passphrase"
    bodies = []
    bodies.append(client.post("/users/register", json={"username": "dana", "password": password}).text)
    login = client.post("/auth/login", json={"username": "dana", "password": password})
    bodies.append(client.post("/auth/login", json={"username": "dana", "password": password + "x"}).text)
    token = login.json()["access_token"]
    basic = base64.b64encode(f"dana:{password}".encode()).decode()
    bodies.append(client.get("/users/me", headers={"Authorization": f"Basic {basic}"}).text)
    bodies.append(client.get("/users/me", headers=bearer(token)).text)
    bodies.append(client.put("/users/me", headers=bearer(token), json={"password": password + "2"}).text)
    bodies.append(client.post("/api/v1/admin/api-keys", headers=bearer(ADMIN_KEY),
                              json={"user_id": "svc", "api_key": "svc-secret-key-999"}).text)
    bodies.append(client.get("/api/v1/admin/api-keys", headers=bearer(ADMIN_KEY)).text)
    bodies.append(client.get("/api/v1/admin/users/me", headers={"X-API-Key": "svc-secret-key-999"}).text)
    bodies.append(client.get("/api/v1/admin/api-keys", headers={"X-API-Key": "wrong-key-123456"}).text)
    bodies.append(client.get("/api/v1/admin/audit", headers=bearer(ADMIN_KEY)).text)
    client.__exit__(None, None, None)
    secrets = [password, password + "x", password + "2", "admin-password-77", ADMIN_KEY, USER_KEY,
               "svc-secret-key-999", "wrong-key-123456", basic]
    assert "login success" in caplog.text  # the audit trail was captured
    for secret in secrets:
        assert secret not in caplog.text, secret
        for body in bodies:
            assert secret not in body, secret


def test_auth_off_keeps_routes_open_but_admin_routes_need_the_local_admin_key(tmp_path):
    client = TestClient(create_app(Settings(home=tmp_path)), raise_server_exceptions=False)
    with client:
        anonymous = client.post("/api/v1/admin/api-keys", json={"user_id": "intruder"})
        assert anonymous.status_code == 401 and "admin.key" in anonymous.json()["detail"]
        assert client.get("/api/v1/admin/api-keys").status_code == 401
        key_file = tmp_path / "admin.key"
        assert key_file.stat().st_mode & 0o777 == 0o600
        admin = {"X-API-Key": key_file.read_text().strip()}
        listing = client.get("/api/v1/admin/api-keys", headers=admin)
        assert listing.status_code == 200 and "X-RateLimit-Limit" not in listing.headers
        assert listing.json()["local-admin"]["source"] == "local" and key_file.read_text().strip() not in listing.text
        assert client.get("/api/v1/admin/api-keys", headers={"X-API-Key": "not-the-key-123"}).status_code == 401
        assert client.get("/users/me").status_code == 401  # it acts on the caller, and there is none
        assert client.get("/api/v1/rate-limit").json()["enabled"] is False
        assert client.get("/openapi.json").headers["X-Frame-Options"] == "DENY"
