"""``kiln serve`` as a real subprocess (BentoML server, separate model-worker process), called over HTTP."""

import subprocess
from pathlib import Path

import httpx
import pytest

from kiln.recipes.digits import digits_split
from tests.conftest import free_port
from tests.servers import KILN, running

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture(scope="module")
def server(built_workspace, kiln_home: Path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [str(KILN), "serve", "--host", "127.0.0.1", "--port", str(port)]
    with running(command, f"{url}/health", kiln_home / f"serve-{port}.log",
                 ready=lambda r: r.json().get("status") == "healthy"):
        yield url


def test_predict_over_http(server):
    _, x_test, _, y_test = digits_split()
    response = httpx.post(f"{server}/predict", json={"model_name": "example", "inputs": x_test[:50].tolist()}, timeout=60)
    assert response.status_code == 200
    predicted = [r["class_index"] for r in response.json()["result"]]
    assert sum(p == y for p, y in zip(predicted, y_test[:50])) >= 45
    assert response.headers["x-model-version"] == "1" and response.headers["x-mlflow-run-id"]


def test_concurrent_requests_are_batched_and_answered_correctly(server):
    import concurrent.futures

    texts = [f"sentence number {i}" for i in range(16)]

    def embed(text):
        return httpx.post(f"{server}/predict", json={"model_name": "minilm", "inputs": text}, timeout=60)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(embed, texts))
    assert all(r.status_code == 200 for r in responses)
    solo = embed(texts[3]).json()["result"]["embedding"]
    assert max(abs(a - b) for a, b in zip(solo, responses[3].json()["result"]["embedding"])) < 1e-4


def test_the_gated_variant_is_served_and_shown(server):
    """The pipeline packaged minilm's ONNX variants; the worker serves the one that passed the gate."""
    answer = httpx.post(f"{server}/predict", json={"model_name": "minilm", "inputs": "A fine movie."}, timeout=60)
    assert answer.status_code == 200
    listed = {m["name"]: m for m in httpx.get(f"{server}/models", timeout=30).json()["models"]}["minilm"]
    variant = answer.headers["x-model-variant"]
    assert variant == answer.json()["model_info"]["variant"] == listed["variant"] == listed["gated_variant"]
    assert variant in {"eager-fp32", "onnx-fp32", "onnx-int8"} and listed["variant_gate_passed"]
    assert "variant_fallback" not in listed and listed["variant_speedup"] >= 1.0
    if variant != "eager-fp32":
        assert listed["variant_agreement"]["mean_cosine"] >= 0.99


def test_errors_over_http(server):
    response = httpx.post(f"{server}/predict", json={"model_name": "nope", "inputs": [1]}, timeout=30)
    assert response.status_code == 404 and response.json()["detail"]["available_models"] == ["example", "minilm"]
    response = httpx.post(f"{server}/predict", json={"model_name": "example", "inputs": [1, 2]}, timeout=30)
    assert response.status_code == 422


def test_pipeline_cli_refuses_unknown_models():
    result = subprocess.run([str(KILN), "pipeline", "--model", "nope"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Unknown model(s) ['nope']" in result.stderr


def test_many_sequential_requests_keep_working(server):
    """Regression: BentoML recycled the gateway->worker session every 100 calls and broke the 101st."""
    with httpx.Client(timeout=30) as http:
        codes = [
            http.post(f"{server}/predict", json={"model_name": "example", "inputs": [float(i % 16)] * 64}).status_code
            for i in range(130)
        ]
    assert set(codes) == {200}
