"""The auth matrix, generated from the API's OpenAPI spec: every route is called with no credentials and
with read, write and admin keys, auth on and auth off, and must answer as the permission table says.
A route without a line in the table fails here. Runs on the surfaces' fakes (the real audio service);
an allowed call may answer 404/409/422 for its made-up arguments, but never 401/403 and never a 5xx."""

import re

import pytest

from bentos.api.http.permissions import Access, rule_for
from bentos.api.http.routes import RouteIndex
from bentos.api.surfaces import permission_rules
from tests.bentos.fakes import fake_server

LEVELS = ("read", "write", "admin")
RANK = {"read": 1, "write": 2, "admin": 3}
RULES = permission_rules()


def make(tmp_path_factory, audio_service, name, **settings):
    server = fake_server(tmp_path_factory.mktemp(name), speech=audio_service, rate_limit_enabled=False, **settings)
    access = server.client.app.state.access
    keys = {}
    for level in LEVELS:  # user-owned keys, so routes that act on the caller's account work too
        user = access.register(f"matrix-{level}", "correct horse", permissions=list(LEVELS[: RANK[level]]))
        keys[level] = access.create_key(f"matrix-{level}-key", user.permission_list, owner_id=user.id)[1]
    return server, keys


@pytest.fixture(scope="module")
def audio_service():
    from bentos.audio import AudioService

    return AudioService.inner()


@pytest.fixture(scope="module")
def auth_on(tmp_path_factory, audio_service):
    server, keys = make(tmp_path_factory, audio_service, "matrix-on", enable_auth=True)
    yield server, keys
    server.close()


@pytest.fixture(scope="module")
def auth_off(tmp_path_factory, audio_service):
    server, keys = make(tmp_path_factory, audio_service, "matrix-off")
    yield server, keys
    server.close()


def operations(app):
    for path, methods in app.openapi()["paths"].items():
        for method in methods:
            yield method.upper(), path


def test_every_route_has_a_permission_line(auth_on):
    server, _ = auth_on
    app = server.client.app
    routes = {f"{method} {path}" for method, path in operations(app) if rule_for(method, path, RULES) or path not in
              {"/livez", "/readyz", "/healthz", "/metrics", "/schema.json"}}
    for _, methods, template in RouteIndex().entries(app):  # also routes outside the spec (docs, mounts)
        routes |= {f"{m} {template}" for m in (methods or {"GET"}) if m != "HEAD"}
    missing = sorted(r for r in routes if r not in RULES)
    assert not missing, f"Routes without a line in a surface's permissions.py: {missing}"
    stale = sorted(set(RULES) - routes)
    assert not stale, f"Lines for routes the app does not have: {stale}"


# Routes that act on the caller's own account or key: with nobody calling, they have nothing to act on.
ACTS_ON_CALLER = {"GET /api/v1/admin/users/me"}


def expected(rule, level, auth_enabled, key):
    """'auth' (401), 'forbidden' (403) or 'allowed' (anything but 401/403 and 5xx)."""
    if rule.access == Access.PUBLIC:
        return "allowed"
    if not auth_enabled and rule.access != Access.ADMIN:  # open, but for routes that need a caller
        needs_caller = rule.access == Access.AUTHENTICATED or key in ACTS_ON_CALLER
        return "auth" if level is None and needs_caller else "allowed"
    if level is None:
        return "allowed" if rule.optional_unless else "auth"
    if rule.permission and RANK[level] < RANK[rule.permission]:
        return "forbidden"
    return "allowed"


@pytest.mark.parametrize("mode", ["auth_on", "auth_off"])
def test_auth_matrix(request, mode):
    server, keys = request.getfixturevalue(mode)
    client, app = server.client, server.client.app
    auth_enabled = mode == "auth_on"
    failures, checked = [], 0
    # State-changing self-service routes go last, so they cannot change the keys under the other calls.
    ordered = sorted(operations(app), key=lambda op: op[1] in ("/auth/logout", "/auth/generate-key"))
    for method, path in ordered:
        rule = rule_for(method, path, RULES)
        if rule is None:
            continue  # BentoML's own routes: documented here, served by BentoML (tests/bentos/test_gateway.py)
        url = re.sub(r"\{[^}]+\}", "matrix-nobody", path)
        for level in (None, *LEVELS):
            headers = {"X-API-Key": keys[level]} if level else {}
            kwargs = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
            status = client.request(method, url, headers=headers, **kwargs).status_code
            want = expected(rule, level, auth_enabled, f"{method} {path}")
            ok = {"auth": status == 401, "forbidden": status == 403,
                  "allowed": status not in (401, 403) and status < 500}[want]
            checked += 1
            if not ok:
                failures.append(f"{method} {path} as {level or 'anonymous'}: {status}, expected {want}")
    assert not failures, "\n".join(failures)
    assert checked >= 4 * 80


def test_every_admin_route_refuses_anonymous_callers_with_default_settings(auth_off):
    server, _ = auth_off
    admin_routes = [key for key, rule in RULES.items() if rule.access == Access.ADMIN]
    assert len(admin_routes) >= 13
    for key in admin_routes:
        method, path = key.split(" ", 1)
        response = server.client.request(method, re.sub(r"\{[^}]+\}", "x", path), json={})
        assert response.status_code == 401, (key, response.status_code)


def test_optional_routes_need_credentials_when_their_surface_says_so(tmp_path, audio_service):
    server, _ = make(type("F", (), {"mktemp": lambda self, n: tmp_path})(), audio_service, "x",
                     enable_auth=True, speech_require_credentials=True)
    try:
        assert server.client.get("/api/v1/voices").status_code == 401
        assert server.client.get("/api/v1/engines").status_code == 401
    finally:
        server.close()
    assert rule_for("GET", "/api/v1/voices", RULES).optional_unless == "speech_require_credentials"


def test_health_is_public_and_exempt_from_rate_limits(tmp_path):
    from kiln.access.ratelimit import RateLimiter
    from kiln.settings import Settings

    server = fake_server(tmp_path, enable_auth=True, api_keys={"reader": "reader-key-0123456789"})
    try:
        server.client.app.state.limiter = RateLimiter(Settings(rate_limit_status="2/minute"))
        statuses = [server.client.get("/info", headers={"X-API-Key": "reader-key-0123456789"}).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        health = [server.client.get("/health") for _ in range(5)]
        assert all(r.status_code == 200 and "X-RateLimit-Limit" not in r.headers for r in health)
        assert health[0].headers["X-Content-Type-Options"] == "nosniff"
    finally:
        server.close()


def test_openapi_documents_the_permission_of_each_route(auth_on):
    server, _ = auth_on
    schema = server.client.get("/openapi.json").json()
    assert {"BearerAuth", "ApiKeyHeader", "BasicAuth"} <= set(schema["components"]["securitySchemes"])
    assert schema["paths"]["/predict"]["post"]["x-kiln-permission"] == "write"
    assert schema["paths"]["/api/v1/admin/api-keys"]["get"]["x-kiln-permission"] == "admin"
    assert {} in schema["paths"]["/api/v1/synth"]["post"]["security"]  # anonymous allowed (TTSKit: Optional)
    assert "security" not in schema["paths"]["/health"]["get"]
    assert schema["paths"]["/metrics"]["get"]["x-kiln-permission"] == "read"
