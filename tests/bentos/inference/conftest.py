import pytest

from tests.bentos.fakes import fake_server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = fake_server(tmp_path_factory.mktemp("inference"))
    yield server
    server.close()


@pytest.fixture(scope="module")
def client(server):
    return server.client
