"""Seed 004's rate limits: inference counts per device (10/minute by default, 2 here), whoever asks; the
answer is its RATE_LIMIT_EXCEEDED with the X-RateLimit headers. Every route also counts per key (100/minute):
a response carries one set of X-RateLimit headers, the refusing limit's, else the tighter one's."""

import pytest

from tests.bentos.devices.conftest import error_of, load
from tests.bentos.fakes import fake_server

LIMIT_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


def one_set(answer):
    """(limit, remaining) of the answer's X-RateLimit headers, checked to be there exactly once each."""
    found = {name: answer.headers.get_list(name) for name in LIMIT_HEADERS}
    assert all(len(values) == 1 for values in found.values()), found
    return found["X-RateLimit-Limit"][0], found["X-RateLimit-Remaining"][0]


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
    assert error["details"]["deviceId"] == "cpu-0" and one_set(answer) == ("2", "0")  # the device's: it refused
    assert len(answer.headers.get_list("Retry-After")) == 1 and int(answer.headers["Retry-After"]) >= 1
    listed = limited.get("/api/device/list")
    assert listed.status_code == 200 and one_set(listed) == ("50", "46")  # the per-key group


@pytest.mark.parametrize(("device", "key", "allowed", "refused"), [
    ("2/minute", "50/minute", ("2", "1"), ("2", "0")),  # the device's limit is the tighter, then refuses
    ("10/minute", "3/minute", ("3", "2"), ("3", "0")),  # the key's is the tighter, then refuses
])
def test_one_set_of_rate_limit_headers_on_an_allowed_and_a_refused_inference(server, client, sessions, device, key,
                                                                              allowed, refused):
    from kiln.access.ratelimit import RateLimiter

    session = load(client)["sessionId"]  # before the limits: the load is not counted
    settings = server.settings.model_copy(update={"rate_limit_device_inference": device, "rate_limit_devices": key})
    state = client.app.state  # the limiter is read per request (monkeypatch cannot restore a State's attribute)
    unlimited, state.limiter = state.limiter, RateLimiter(settings)  # fresh counts
    try:
        inferences(client, session, allowed, refused)
    finally:
        state.limiter = unlimited


def inferences(client, session, allowed, refused):
    run = {"prompt": "a handwritten 7", "steps": 2, "seed": 1, "sessionId": session}
    first = client.post("/api/inference/execute/cpu-0", json=run)
    assert first.status_code == 200, first.text
    assert one_set(first) == allowed and "Retry-After" not in first.headers
    for left in range(int(allowed[1]) - 1, -1, -1):  # the tighter limit's budget, used up
        answer = client.post("/api/inference/execute/cpu-0", json=run)
        assert answer.status_code == 200 and one_set(answer) == (allowed[0], str(left)), answer.text
    answer = client.post("/api/inference/execute/cpu-0", json=run)
    error_of(answer, 429, "RATE_LIMIT_EXCEEDED")
    assert one_set(answer) == refused and len(answer.headers.get_list("Retry-After")) == 1
