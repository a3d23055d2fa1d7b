"""With auth on, registered faces belong to their owner: another user neither lists, recognizes against nor
forgets them; an admin sees everyone's; anonymous callers and the camera socket without a token are refused."""

import pytest
from starlette.websockets import WebSocketDisconnect

from tests.bentos.fakes import fake_server
from tests.bentos.vision.conftest import with_vision
from tests.bentos.vision.images import jpeg, upload


@pytest.fixture(scope="module")
def owners(tmp_path_factory):
    server = with_vision(fake_server(tmp_path_factory.mktemp("vision-owners"), enable_auth=True, rate_limit_enabled=False))
    access = server.client.app.state.access
    keys = {}
    for name, permissions in (("ada", ["read", "write"]), ("bob", ["read", "write"]), ("root", ["read", "write", "admin"])):
        user = access.register(f"{name}-user", "correct horse", permissions=permissions)
        keys[name] = {"X-API-Key": access.create_key(f"{name}-key", user.permission_list, owner_id=user.id)[1]}
    yield server, keys
    server.close()


def test_faces_are_their_owners_own(owners):
    server, keys = owners
    client = server.client
    assert client.post("/api/face-recognition/register", files=upload(jpeg("astronaut")), data={"name": "x"}).status_code == 401
    face_id = client.post("/api/face-recognition/register", files=upload(jpeg("astronaut")), data={"name": "Ada's friend"},
                          headers=keys["ada"]).json()["face_id"]
    probe = upload(jpeg("astronaut", mirror=True, scale=0.7))
    assert client.post("/api/face-recognition/recognize", files=probe, headers=keys["ada"]).json()["faces"][0]["name"] == "Ada's friend"
    assert client.post("/api/face-recognition/recognize", files=probe, headers=keys["bob"]).json()["faces"][0]["name"] == "unknown"
    assert client.get("/api/face-recognition/faces", headers=keys["bob"]).json() == {"faces": [], "total": 0}
    assert client.delete(f"/api/face-recognition/faces/{face_id}", headers=keys["bob"]).status_code == 404
    everyone = client.get("/api/face-recognition/faces", headers=keys["root"]).json()
    assert face_id in [f["face_id"] for f in everyone["faces"]]
    assert client.delete(f"/api/face-recognition/faces/{face_id}", headers=keys["ada"]).status_code == 200


def test_the_camera_socket_needs_a_token_when_auth_is_on(owners):
    server, keys = owners
    with pytest.raises(WebSocketDisconnect) as refused:
        with server.client.websocket_connect("/ws/camera") as socket:
            socket.receive_json()
    assert refused.value.code == 4401
    with server.client.websocket_connect(f"/api/ws/camera?token={keys['bob']['X-API-Key']}") as socket:
        assert socket.receive_json()["type"] == "connected"
