"""One in-process gateway per test session: BentoML registers Prometheus metrics per app, so a second
``Gateway.to_asgi()`` in the same process fails with DuplicateTimeseries."""

import pytest
from starlette.testclient import TestClient


@pytest.fixture(scope="session")
def gateway_client(built_workspace):
    from bentos.gateway import Gateway

    with TestClient(Gateway.to_asgi()) as test_client:
        yield test_client
