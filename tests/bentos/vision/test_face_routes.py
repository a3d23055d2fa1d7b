"""Face routes on dlib's packaged models: detect, register, recognize (mirrored and rescaled: same person;
Grace Hopper: not her), list and forget (descriptor and image)."""

from kiln.vision.samples import ASTRONAUT_FACE, GRACE_HOPPER_FACE, iou
from tests.bentos.vision.images import jpeg, upload


def test_detect_finds_the_astronauts_face_where_it_was_recorded_by_hand(client):
    response = client.post("/api/face-recognition/detect", files=upload(jpeg("astronaut")))
    assert response.status_code == 200, response.text
    faces = response.json()["faces"]
    assert len(faces) == 1 and faces[0]["face_id"] == "face_001"
    assert iou(faces[0]["bbox"], ASTRONAUT_FACE) >= 0.5
    x, y, w, h = faces[0]["bbox"]
    for point in faces[0]["landmarks"].values():
        assert x <= point[0] <= x + w and y <= point[1] <= y + h
    assert faces[0]["landmarks"]["left_eye"][0] < faces[0]["landmarks"]["right_eye"][0]


def test_register_then_recognize_mirrored_and_rescaled_and_not_grace_hopper(client):
    registered = client.post("/api/face-recognition/register", files=upload(jpeg("astronaut")), data={"name": "Eileen Collins"})
    assert registered.status_code == 200, registered.text
    face_id = registered.json()["face_id"]
    assert registered.json()["success"] is True and face_id.startswith("face_")

    seen = client.post("/api/face-recognition/recognize", files=upload(jpeg("astronaut", mirror=True, scale=0.7))).json()
    assert [f["name"] for f in seen["faces"]] == ["Eileen Collins"]
    assert seen["faces"][0]["face_id"] == face_id and seen["faces"][0]["confidence"] > 0
    assert seen["faces"][0]["distance"] < seen["threshold"]

    other = client.post("/api/face-recognition/recognize", files=upload(jpeg("grace_hopper"))).json()
    assert len(other["faces"]) == 1 and iou(other["faces"][0]["bbox"], GRACE_HOPPER_FACE) >= 0.5
    assert other["faces"][0]["name"] == "unknown" and other["faces"][0]["face_id"] is None
    assert other["faces"][0]["distance"] > other["threshold"]
    client.delete(f"/api/face-recognition/faces/{face_id}")


def test_register_refuses_an_image_without_a_face_and_a_missing_name(client):
    none = client.post("/api/face-recognition/register", files=upload(jpeg("coffee")), data={"name": "Nobody"})
    assert none.status_code == 422 and "no face" in none.json()["detail"]
    nameless = client.post("/api/face-recognition/register", files=upload(jpeg("astronaut")))
    assert nameless.status_code == 422 and "name" in nameless.json()["detail"]


def test_register_refuses_an_image_with_two_faces(client):
    import io

    from PIL import Image

    from kiln.vision.samples import sample_image

    both = Image.new("RGB", (1024, 600))
    both.paste(sample_image("astronaut"), (0, 0))
    both.paste(sample_image("grace_hopper").resize((427, 500)), (560, 50))
    out = io.BytesIO()
    both.save(out, format="PNG")
    response = client.post("/api/face-recognition/register", files=upload(out.getvalue(), "two.png", "image/png"),
                           data={"name": "Two people"})
    assert response.status_code == 422 and "2 faces" in response.json()["detail"]


def test_forget_removes_the_descriptor_and_the_image(client, server):
    face_id = client.post("/api/face-recognition/register", files=upload(jpeg("grace_hopper")),
                          data={"name": "Grace Hopper"}).json()["face_id"]
    listed = client.get("/api/face-recognition/faces").json()
    mine = [f for f in listed["faces"] if f["face_id"] == face_id]
    assert mine and mine[0]["name"] == "Grace Hopper" and listed["total"] >= 1
    image_id = mine[0]["image_file_id"]
    assert client.get(f"/files/{image_id}").status_code == 200
    assert client.post("/api/face-recognition/recognize", files=upload(jpeg("grace_hopper", scale=0.5))).json()["faces"][0]["name"] == "Grace Hopper"

    forgotten = client.delete(f"/api/face-recognition/faces/{face_id}")
    assert forgotten.status_code == 200 and forgotten.json()["deleted"] == ["descriptor", "image"]
    assert face_id not in [f["face_id"] for f in client.get("/api/face-recognition/faces").json()["faces"]]
    assert client.get(f"/files/{image_id}").status_code == 404
    assert not list(server.settings.file_store_dir.rglob(image_id))
    assert client.post("/api/face-recognition/recognize", files=upload(jpeg("grace_hopper", scale=0.5))).json()["faces"][0]["name"] == "unknown"
    assert client.delete(f"/api/face-recognition/faces/{face_id}").status_code == 404


def test_nothing_face_related_reaches_the_logs(client, server):
    client.post("/api/face-recognition/register", files=upload(jpeg("astronaut")), data={"name": "Secret Person Name"})
    text = "".join(p.read_text(errors="replace") for p in server.settings.logs_dir.rglob("*") if p.is_file())
    assert "Secret Person Name" not in text
