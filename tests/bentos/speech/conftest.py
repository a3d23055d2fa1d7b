import pytest

from tests.bentos.fakes import fake_server


@pytest.fixture(scope="session")
def audio_service():
    """The real audio service class in process: its engines ship with their packages (no pipeline run)."""
    from bentos.audio import AudioService

    return AudioService.inner()


@pytest.fixture(scope="module")
def server(tmp_path_factory, audio_service):
    server = fake_server(tmp_path_factory.mktemp("speech"), speech=audio_service)
    yield server
    server.close()


@pytest.fixture(scope="module")
def client(server):
    return server.client
