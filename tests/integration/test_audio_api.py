"""``kiln api`` as a real subprocess: the gateway and the AudioService in separate BentoML processes,
audio round-tripped over HTTP, TTSKit options applied (extra header, access log off)."""

from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.heard import SPOKEN, assert_heard
from tests.servers import KILN, running

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture(scope="module")
def api(kiln_home: Path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [str(KILN), "api", "--host", "127.0.0.1", "--port", str(port), "--header", "X-API-Version: v1",
               "--no-access-log", "--log-level", "warning"]
    with running(command, f"{url}/api/v1/health", kiln_home / f"api-{port}.log"):
        yield url


def test_synthesize_then_transcribe_over_http(api):
    synth = httpx.post(f"{api}/api/v1/synth", json={"text": SPOKEN, "format": "wav"}, timeout=60)
    assert synth.status_code == 200 and synth.headers["x-engine-used"] == "piper"
    assert synth.headers["x-api-version"] == "v1"
    heard = httpx.post(f"{api}/v1/audio/transcriptions", files={"file": ("a.wav", synth.content)}, timeout=60)
    assert heard.status_code == 200
    assert_heard(heard.json()["text"], 0.15)


def test_errors_cross_the_service_boundary_intact(api):
    too_long = httpx.post(f"{api}/api/v1/synth", json={"text": "a" * 1001}, timeout=30)
    assert too_long.status_code == 400 and too_long.json()["error_type"] == "text_too_long"
    absent = httpx.post(f"{api}/api/v1/synth", json={"text": "hi", "engine": "transformers"}, timeout=30)
    assert absent.status_code == 503 and "kiln pipeline" in absent.json()["detail"]
    junk = httpx.post(f"{api}/transcribe", files={"file": ("a.wav", b"junk")}, timeout=30)
    assert junk.status_code == 422 and junk.json()["success"] is False
