"""No input that crashes: lone surrogates, deep nesting and absurd timeouts get a clear 4xx, never a 500
(or a misleading 503)."""

import json

import pytest

from bentos.api.http.json_guard import MAX_JSON_DEPTH, json_depth_exceeds
from tests.bentos.fakes import fake_server

LONE = "\ud800"  # json.dumps writes it as the escape "\\ud800", as an attacker's body would carry it


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from bentos.audio import AudioService

    server = fake_server(tmp_path_factory.mktemp("bad-bodies"), speech=AudioService.inner())
    yield server
    server.close()


def assert_names_field(response, field):
    assert response.status_code == 422, response.text
    assert f"{field}: contains a lone UTF-16 surrogate" in response.text


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/predict", {"model_name": "shouter", "inputs": f"hello {LONE}"}, "inputs"),
    ("/predict/batch", {"model_name": "shouter", "inputs": ["fine", LONE]}, "inputs.1"),
    ("/auth/login", {"username": LONE, "password": "secret-password"}, "username"),
    ("/synthesize", {"model_name": "en_US-joe-medium", "inputs": LONE}, "inputs"),
    ("/api/audio/synthesize", {"text": f"say {LONE}"}, "text"),
])
def test_lone_surrogate_is_422_naming_the_field(server, path, body, field):
    response = server.client.post(path, content=json.dumps(body), headers={"content-type": "application/json"})
    assert_names_field(response, field)


def test_surrogate_pairs_are_text(server):
    response = server.client.post("/predict", json={"model_name": "shouter", "inputs": "ok \U0001F600"})
    assert response.status_code == 200 and response.json()["result"] == {"text": "OK \U0001F600"}


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", None])
def test_deeply_nested_json_is_400(server, content_type):
    body = '{"username": ' + "[" * 100_000 + "]" * 100_000 + ', "password": "x"}'
    headers = {"content-type": content_type} if content_type else {}
    response = server.client.post("/auth/login", content=body, headers=headers)
    assert response.status_code == 400 and "nested deeper" in response.text, response.text


def test_depth_bound_is_exact_and_ignores_brackets_in_strings():
    def nested(depth):
        value = 'x\\"]}[{'
        for _ in range(depth - 1):
            value = [value]
        return json.dumps({"s": '\\"[[[[', "n": value, "pad": [[1]] * 100}).encode()

    assert not json_depth_exceeds(nested(MAX_JSON_DEPTH))
    assert json_depth_exceeds(nested(MAX_JSON_DEPTH + 1))
    assert not json_depth_exceeds(b"[" * 500)  # unbalanced: left to the parser's own error


def test_timeout_below_the_lower_bound_is_422(server):
    response = server.client.post("/predict", json={"model_name": "adder", "inputs": [1, 2, 3, 4], "timeout": 1e-300})
    assert response.status_code == 422 and "timeout" in response.text
    ok = server.client.post("/predict", json={"model_name": "adder", "inputs": [1, 2, 3, 4], "timeout": 0.5})
    assert ok.status_code == 200
