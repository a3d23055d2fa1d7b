"""Every response passes through Kiln's HTTP layer: every path of the OpenAPI spec, unknown paths and wrong
methods under each API document's prefix answer with the security headers, X-Process-Time and a request
id, and errors are JSON in that prefix's format. Also the docs pages and the home page."""

import re

import pytest

from tests.bentos.fakes import fake_server

# prefix -> (an unknown path under it, how to read the message of its error format)
PREFIXES = {
    "/": ("/no-such-thing", lambda body: body["error"]),
    "/api": ("/api/no-such-thing", lambda body: body["detail"]),
    "/api/v1": ("/api/v1/no-such-thing", lambda body: body["detail"]),
    "/v1": ("/v1/no-such-thing", lambda body: body["error"]["message"]),
    "/auth": ("/auth/no-such-thing", lambda body: body["error"]["message"]),
    "/outputs": ("/outputs/images/none.png", lambda body: body["detail"]),
}
BENTOML_ROUTES = {"/livez", "/readyz", "/healthz", "/metrics", "/schema.json"}  # served by BentoML: test_gateway.py


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from bentos.audio import AudioService

    server = fake_server(tmp_path_factory.mktemp("front-door"), speech=AudioService.inner(), cors_origins=["https://app.example"])
    yield server
    server.close()


def assert_layer(response, rid=None):
    headers = response.headers
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["X-Frame-Options"] == "DENY", response.url
    assert float(headers["X-Process-Time"]) >= 0 and headers["X-Request-ID"]
    if rid:
        assert headers["X-Request-ID"] == rid


def test_every_path_of_the_spec_answers_through_the_layer(server):
    client = server.client
    paths = client.get("/openapi.json").json()["paths"]
    walked = 0
    for path, operations in paths.items():
        if path in BENTOML_ROUTES:
            continue
        url = re.sub(r"\{[^}]+\}", "walk", path)
        for method in operations:
            rid = f"walk-{walked}"
            kwargs = {"json": {}} if method in ("post", "put") else {}
            response = client.request(method.upper(), url, headers={"X-Request-ID": rid, **server.admin}, **kwargs)
            walked += 1
            assert response.status_code < 500, (method, path, response.status_code, response.text[:300])
            assert_layer(response, rid)
            if response.status_code >= 400:
                body = response.json()
                assert rid in response.text, (method, path, body)
    assert walked >= 80


@pytest.mark.parametrize("prefix", sorted(PREFIXES))
def test_unknown_paths_answer_json_404_in_the_prefix_format(server, prefix):
    path, message = PREFIXES[prefix]
    for method in ("GET",) if prefix == "/outputs" else ("GET", "POST", "DELETE"):  # files: writes are 405
        response = server.client.request(method, path, headers={"X-Request-ID": f"unknown-{method}"})
        assert response.status_code == 404 and response.headers["content-type"] == "application/json", (method, path)
        assert_layer(response, f"unknown-{method}")
        assert path.split("/")[-1] in message(response.json()) or "Not Found" in message(response.json())
        assert f"unknown-{method}" in response.text


@pytest.mark.parametrize("method, path, allowed, message", [
    ("GET", "/predict", "POST", lambda b: b["error"]),
    ("DELETE", "/health", "GET", lambda b: b["error"]),
    ("GET", "/api/audio/synthesize", "POST", lambda b: b["detail"]),
    ("POST", "/api/v1/voices", "GET", lambda b: b["detail"]),
    ("GET", "/v1/audio/speech", "POST", lambda b: b["error"]["message"]),
    ("GET", "/auth/login", "POST", lambda b: b["error"]["message"]),
    ("PATCH", "/api/v1/admin/api-keys", "GET", lambda b: b["detail"]),
])
def test_wrong_methods_answer_json_405_with_allow(server, method, path, allowed, message):
    response = server.client.request(method, path)
    assert response.status_code == 405, response.text
    assert allowed in response.headers["Allow"] and method in message(response.json())
    assert_layer(response)


def test_cors_answers_on_unknown_paths_too(server):
    response = server.client.get("/nowhere", headers={"Origin": "https://app.example"})
    assert response.status_code == 404 and response.headers["access-control-allow-origin"] == "https://app.example"
    assert "X-Request-ID" in response.headers["access-control-expose-headers"]


def test_a_trailing_slash_redirects_to_the_route(server):
    response = server.client.get("/health/", follow_redirects=False)
    assert response.status_code == 307 and response.headers["location"].endswith("/health")


def test_docs_pages_load_nothing_from_the_internet(server):
    client = server.client
    for page in ("/docs", "/redoc"):
        html = client.get(page)
        assert html.status_code == 200 and "text/html" in html.headers["content-type"]
        sources = re.findall(r'(?:src|href)="([^"]+)"', html.text)
        assert sources and all(s.startswith("/") for s in sources), (page, sources)
        for source in sources:
            assert client.get(source).status_code == 200, source
    assert "fonts.googleapis" not in client.get("/redoc").text


def test_the_home_page_for_browsers(server):
    client = server.client
    page = client.get("/", headers={"Accept": "text/html,application/xhtml+xml"})
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    html = page.text
    for needle in ("adder", "shouter", "piper", "/docs", "/redoc", ":3000", ":5000", "unbuilt"):
        assert needle in html, needle
    assert not re.findall(r'(?:src|href)="https?://(?!testserver)', html.replace(":3000", "").replace(":5000", ""))
    assert client.get("/", headers={"Accept": "application/json"}).json()["name"] == "Kiln inference API"
