"""Seed 004's rate limits: inference counts per device (10/minute by default, 2 here), whoever asks; the
answer is its RATE_LIMIT_EXCEEDED with the X-RateLimit headers."""

import pytest

from tests.bentos.devices.conftest import error_of
from tests.bentos.fakes import fake_server


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    server = fake_server(tmp_path_factory.mktemp("devices-limits"), rate_limit_enabled=True,
                         rate_limit_device_inference="2/minute", rate_limit_devices="50/minute")
    yield server.client
    server.close()


def test_inference_is_limited_per_device(limited):
    for _ in range(2):  # counted before the session is looked up: no model is needed to use the budget
        error_of(limited.post("/api/inference/execute/cpu-0", json={"prompt": "a 7"}), 404, "SESSION_NOT_FOUND")
    answer = limited.post("/api/inference/execute/cpu-0", json={"prompt": "a 7"})
    error = error_of(answer, 429, "RATE_LIMIT_EXCEEDED")
    # the device's limit, and the per-key group's the access layer adds to every answer
    assert error["details"]["deviceId"] == "cpu-0" and answer.headers.get_list("X-RateLimit-Limit") == ["2", "50"]
    assert int(answer.headers["Retry-After"]) >= 1
    listed = limited.get("/api/device/list")
    assert listed.status_code == 200 and listed.headers["X-RateLimit-Limit"] == "50"  # the per-key group
