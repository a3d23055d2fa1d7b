"""The camera websocket: frames in (binary or JSON), detections and faces out, newest frame first."""

import base64
import json

from kiln.vision.samples import ASTRONAUT_FACE, iou
from tests.bentos.vision.images import jpeg


def test_binary_frame_gets_detections_and_faces(client):
    with client.websocket_connect("/ws/camera") as socket:
        hello = socket.receive_json()
        assert hello["type"] == "connected" and hello["data"]["operations"] == ["detect", "faces"]
        socket.send_bytes(jpeg("astronaut"))
        answer = socket.receive_json()
    assert answer["type"] == "result" and answer["frame_id"] == 1
    assert answer["latency_ms"] > 0 and answer["skipped"] == 0
    assert len(answer["faces"]) == 1 and iou(answer["faces"][0]["bbox"], ASTRONAUT_FACE) >= 0.5
    assert any(d["label"] == "face" for d in answer["detections"]) and answer["detector"] == "opencv"


def test_json_frame_recognizes_a_registered_face_on_the_api_path(client):
    face_id = client.post("/api/face-recognition/register", files={"image": ("a.jpg", jpeg("astronaut"), "image/jpeg")},
                          data={"name": "Camera Person"}).json()["face_id"]
    try:
        with client.websocket_connect("/api/ws/camera") as socket:
            socket.receive_json()
            frame = base64.b64encode(jpeg("astronaut", mirror=True, scale=0.7)).decode()
            socket.send_text(json.dumps({"image": frame, "frame_id": "cam-7", "operations": ["recognize"]}))
            answer = socket.receive_json()
        assert answer["frame_id"] == "cam-7" and "detections" not in answer
        assert [f["name"] for f in answer["faces"]] == ["Camera Person"] and answer["faces"][0]["match_face_id"] == face_id
    finally:
        client.delete(f"/api/face-recognition/faces/{face_id}")


def test_bad_frames_get_an_error_and_the_stream_goes_on(client):
    with client.websocket_connect("/ws/camera") as socket:
        socket.receive_json()
        socket.send_text("not json")
        assert socket.receive_json()["type"] == "error"
        socket.send_text(json.dumps({"image": base64.b64encode(b"plain text").decode()}))
        error = socket.receive_json()
        assert error["type"] == "error" and "not an image" in error["detail"]
        socket.send_text(json.dumps({"image": "x", "operations": ["teleport"]}))
        assert "teleport" in socket.receive_json()["detail"]
        socket.send_bytes(b"\xff\xd8\xff" + b"\x00" * (4 * 1024 * 1024 + 1))
        assert "at most" in socket.receive_json()["detail"]
        socket.send_bytes(jpeg("coffee"))
        answer = socket.receive_json()
        assert answer["type"] == "result" and answer["faces"] == []


def test_stale_frames_are_skipped_and_the_last_answer_is_the_newest_frame(client):
    frames = 6
    with client.websocket_connect("/ws/camera?operations=faces") as socket:
        socket.receive_json()
        for i in range(frames):
            socket.send_text(json.dumps({"image": base64.b64encode(jpeg("astronaut")).decode(), "frame_id": i}))
        answers = []
        while not answers or answers[-1]["frame_id"] != frames - 1:
            answers.append(socket.receive_json())
    assert len(answers) < frames  # some frames were replaced by newer ones while a frame was processed
    assert answers[-1]["skipped"] == frames - len(answers)
    assert [a["frame_id"] for a in answers] == sorted(a["frame_id"] for a in answers)


def test_unknown_operations_in_the_query_close_the_socket(client):
    import pytest
    from starlette.websockets import WebSocketDisconnect

    with pytest.raises(WebSocketDisconnect) as closed:
        with client.websocket_connect("/ws/camera?operations=teleport") as socket:
            socket.receive_json()
    assert closed.value.code == 1008
