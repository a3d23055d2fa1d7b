"""The auth matrix, generated from the gateway's OpenAPI spec: every route is called with no credentials
and with read, write and admin keys, and must answer as bentos/api/permissions.py says. A route without
an entry in the table fails here. Runs through Gateway.to_asgi() (no models needed: the route's own
answer, e.g. 404/422/503, just must not be an auth error when access is granted)."""

import re

import pytest

from bentos.api.access import RouteIndex
from bentos.api.permissions import RULES, Access, rule_for
from kiln.access.ratelimit import RateLimiter
from kiln.access.service import AccessControl
from kiln.settings import Settings

LEVELS = ("read", "write", "admin")
RANK = {"read": 1, "write": 2, "admin": 3}


@pytest.fixture(scope="module")
def gateway(gateway_client, tmp_path_factory):
    """The session's real gateway with auth switched on (its own records database), restored afterwards.

    Access control reads ``app.state`` per request, so swapping it is enough: no second ``to_asgi()``.
    """
    from bentos.gateway import app

    settings = Settings(home=tmp_path_factory.mktemp("matrix"), enable_auth=True, rate_limit_enabled=False)
    saved = app.state.access, app.state.limiter
    access = AccessControl(settings)
    access.start()
    keys = {}
    for level in LEVELS:  # user-owned keys, so routes that act on the caller's account work too
        user = access.register(f"matrix-{level}", "correct horse", permissions=list(LEVELS[: RANK[level]]))
        keys[level] = access.create_key(f"matrix-{level}-key", user.permission_list, owner_id=user.id)[1]
    app.state.access, app.state.limiter = access, None
    try:
        yield gateway_client, app, keys
    finally:
        app.state.access, app.state.limiter = saved


def operations(app):
    for path, methods in app.openapi()["paths"].items():
        for method in methods:
            yield method.upper(), path


def test_every_route_has_a_permission_entry(gateway):
    _, app, _ = gateway
    routes = {f"{method} {path}" for method, path in operations(app)}
    for _, methods, template in RouteIndex().entries(app):  # also routes outside the schema (docs)
        routes |= {f"{m} {template}" for m in (methods or {"GET"}) if m != "HEAD"}
    missing = sorted(r for r in routes if r not in RULES)
    assert not missing, f"Routes without an entry in bentos/api/permissions.py: {missing}"
    stale = sorted(set(RULES) - routes)
    assert not stale, f"Entries for routes the app does not have: {stale}"


def expected(rule, level):
    """'auth' (401), 'forbidden' (403) or 'allowed' (anything but 401/403)."""
    if rule.access == Access.PUBLIC:
        return "allowed"
    if level is None:
        return "auth"
    if rule.permission and RANK[level] < RANK[rule.permission]:
        return "forbidden"
    return "allowed"


def test_auth_matrix(gateway):
    client, app, keys = gateway
    failures, checked = [], 0
    # State-changing self-service routes go last, so they cannot change the keys under the other calls.
    ordered = sorted(operations(app), key=lambda op: op[1] in ("/auth/logout", "/auth/generate-key"))
    for method, path in ordered:
        rule = rule_for(method, path)
        assert rule is not None, f"{method} {path} has no entry in bentos/api/permissions.py"
        url = re.sub(r"\{[^}]+\}", "matrix-nobody", path)
        for level in (None, *LEVELS):
            headers = {"X-API-Key": keys[level]} if level else {}
            kwargs = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
            status = client.request(method, url, headers=headers, **kwargs).status_code
            want = expected(rule, level)
            ok = {"auth": status == 401, "forbidden": status == 403, "allowed": status not in (401, 403)}[want]
            checked += 1
            if not ok:
                failures.append(f"{method} {path} as {level or 'anonymous'}: {status}, expected {want}")
    assert not failures, "\n".join(failures)
    assert checked >= 4 * 20


def test_health_is_public_and_exempt_from_rate_limits(gateway):
    client, app, keys = gateway
    limiter = RateLimiter(Settings(rate_limit_status="2/minute"))
    app.state.limiter = limiter
    try:
        statuses = [client.get("/info", headers={"X-API-Key": keys["read"]}).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        health = [client.get("/health") for _ in range(5)]
        assert all(r.status_code == 200 and "X-RateLimit-Limit" not in r.headers for r in health)
        assert health[0].headers["X-Content-Type-Options"] == "nosniff"
    finally:
        app.state.limiter = None


def test_gateway_with_auth_off_is_open(gateway):
    client, app, _ = gateway
    open_access = AccessControl(Settings(home=app.state.access.settings.home_dir / "off"))
    saved = app.state.access
    app.state.access = open_access
    try:
        assert client.get("/info").status_code == 200
        assert client.get("/api/v1/admin/api-keys").status_code == 200
        response = client.post("/predict", json={"model_name": "nope", "inputs": [1]})
        assert response.status_code == 404 and response.json()["success"] is False
    finally:
        app.state.access = saved


def test_openapi_documents_the_permission_of_each_route(gateway):
    client, _, _ = gateway
    schema = client.get("/openapi.json").json()
    assert {"BearerAuth", "ApiKeyHeader", "BasicAuth"} <= set(schema["components"]["securitySchemes"])
    assert schema["paths"]["/predict"]["post"]["x-kiln-permission"] == "write"
    assert schema["paths"]["/api/v1/admin/api-keys"]["get"]["x-kiln-permission"] == "admin"
    assert "security" not in schema["paths"]["/health"]["get"]


def test_bentoml_own_routes_have_entries_and_are_enforced(gateway):
    from bentos.api.permissions import SERVER_RULES

    client, _, keys = gateway
    server_app = client.app
    templates = set()
    for _, methods, template in RouteIndex().entries(server_app):
        if template != "/{path:path}":  # the mounted API app, covered above
            templates |= {f"{m} {template}" for m in (methods or {"GET"}) if m != "HEAD"}
    assert templates and templates <= set(SERVER_RULES), f"BentoML routes without an entry: {sorted(templates - set(SERVER_RULES))}"
    metrics = client.get("/metrics")  # (granted, BentoML's /metrics never answers in-process: tested over HTTP)
    assert metrics.status_code == 401 and metrics.json()["success"] is False
    for public in ("/livez", "/readyz", "/docs.json"):
        assert client.get(public).status_code == 200, public
