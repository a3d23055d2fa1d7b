"""The spec tells the truth: errors are declared with the schema of the API document that owns the path, and
configured limits (not the schemas' hard caps) are what the spec shows and what the server checks."""

import pytest

from tests.bentos.fakes import fake_server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = fake_server(tmp_path_factory.mktemp("spec"), max_instances=3, audio_max_text_length=700)
    yield server
    server.close()


@pytest.fixture(scope="module")
def spec(server):
    return server.client.get("/openapi.json").json()


def error_schema(spec, path, method, status):
    return spec["paths"][path][method]["responses"][str(status)]["content"]["application/json"]["schema"]["$ref"]


@pytest.mark.parametrize(("path", "method", "status", "schema"), [
    ("/predict", "post", 422, "InferenceError"),
    ("/predict", "post", "default", "InferenceError"),
    ("/tasks/{task_id}", "get", 404, "PlatformError"),
    ("/auth/login", "post", 429, "PlatformError"),
    ("/api/v1/synth", "post", 413, "TtsKitError"),
    ("/v1/audio/speech", "post", 401, "OpenAIError"),
    ("/api/audio/synthesize", "post", 422, "MultimediaError"),
])
def test_errors_are_declared_in_the_owning_documents_schema(spec, path, method, status, schema):
    assert error_schema(spec, path, method, status) == f"#/components/schemas/{schema}"
    assert "HTTPValidationError" not in spec["components"]["schemas"]  # FastAPI's shape is never answered


def test_the_declared_error_schema_is_what_the_server_answers(server, spec):
    body = server.client.post("/tasks", json={"task_type": 5}, headers=server.admin).json()
    required = spec["components"]["schemas"]["PlatformError"]["properties"]["error"]["required"]
    assert body["error"]["code"] == "VALIDATION_ERROR" and set(required) <= set(body["error"])


def test_target_instances_bound_is_the_configured_one(server, spec):
    parameter = next(p for p in spec["paths"]["/autoscaler/scale"]["post"]["parameters"] if p["name"] == "target_instances")
    assert parameter["schema"]["maximum"] == 3
    refused = server.client.post("/autoscaler/scale", params={"model_name": "adder", "target_instances": 4}, headers=server.admin)
    assert refused.status_code == 422 and "KILN_MAX_INSTANCES" in refused.json()["error"]
    allowed = server.client.post("/autoscaler/scale", params={"model_name": "adder", "target_instances": 3}, headers=server.admin)
    assert allowed.status_code == 200, allowed.text


def test_synthesis_text_limit_is_the_configured_one(spec):
    synth = spec["components"]["schemas"]["SynthRequest"]["properties"]["text"]
    assert synth["maxLength"] == 700
    preview = next(p for p in spec["paths"]["/api/v1/synth/preview"]["get"]["parameters"] if p["name"] == "text")
    assert preview["schema"]["maxLength"] == 700
    assert spec["components"]["schemas"]["TaskCreate"]["properties"]["description"]["anyOf"][0]["maxLength"] == 5000  # not speech
