"""Classification and detection routes on the real packaged models (the model worker's real pools)."""

from kiln.vision.samples import ASTRONAUT_FACE, IMAGENET_TRUTH, iou
from tests.bentos.vision.images import jpeg, upload


def test_classify_names_the_cat_and_the_espresso(client):
    cat = client.post("/api/image-recognition/classify", files=upload(jpeg("chelsea")))
    assert cat.status_code == 200, cat.text
    body = cat.json()
    assert body["model"] == "efficientnet-lite0" and len(body["classifications"]) == 5
    assert body["classifications"][0]["label"] in IMAGENET_TRUTH["chelsea"]
    coffee = client.post("/api/image-recognition/classify", files=upload(jpeg("coffee")), data={"top_k": "2"}).json()
    assert coffee["classifications"][0]["label"] == "espresso" and coffee["classifications"][0]["confidence"] > 0.5
    assert len(coffee["classifications"]) == 2


def test_classify_refuses_a_model_of_another_task_and_an_unknown_one(client):
    wrong = client.post("/api/image-recognition/classify", files=upload(jpeg("coffee")), data={"model": "dlib-faces"})
    assert wrong.status_code == 422 and "face-recognition" in wrong.json()["detail"]
    unknown = client.post("/api/image-recognition/classify", files=upload(jpeg("coffee")), data={"model": "no-such-model"})
    assert unknown.status_code == 404


def test_detect_finds_the_astronauts_face_and_says_which_detector_ran(client):
    response = client.post("/api/image-recognition/detect", files=upload(jpeg("astronaut")))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["detector"] == "opencv" and "face" in body["known_labels"] and "person" in body["known_labels"]
    faces = [d for d in body["detections"] if d["label"] == "face"]
    assert faces and iou(faces[0]["bbox"], ASTRONAUT_FACE) >= 0.5
    assert all(d["label"] in body["labels"] for d in body["detections"])


def test_detect_never_makes_up_a_label(client):
    response = client.post("/api/image-recognition/detect", files=upload(jpeg("astronaut")), data={"labels": "face,dog"})
    assert response.status_code == 422
    assert "dog" in response.json()["detail"] and "face" in response.json()["detail"]
    only = client.post("/api/image-recognition/detect", files=upload(jpeg("astronaut")), data={"labels": "face"}).json()
    assert {d["label"] for d in only["detections"]} == {"face"} and only["labels"] == ["face"]


def test_detect_finds_a_cat_face_when_asked(client):
    body = client.post("/api/image-recognition/detect", files=upload(jpeg("chelsea")),
                       data={"labels": "cat_face", "threshold": "0"}).json()
    assert body["labels"] == ["cat_face"] and all(d["label"] == "cat_face" for d in body["detections"])
    assert "cat_face" not in client.post("/api/image-recognition/detect", files=upload(jpeg("chelsea"))).json()["labels"]
