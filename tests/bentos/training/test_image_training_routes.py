"""POST /api/training/start for model_type image_classifier on fakes: the base must be the stored EfficientNet-Lite0
(404 saying how to get it), the dataset an uploaded .zip/.tar of class folders or a directory under the dataset
roots (422 naming dataset_path otherwise), checked before any task exists."""

import io
import tarfile

import pytest

from kiln.store import ModelStore
from tests.bentos.fakes import fake_server
from tests.digit_images import digit_pngs, store_lite0, zip_bytes

IMAGES = {"model_type": "image_classifier", "base_model": "efficientnet-lite0", "output_dir": "/models/digit-images"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = fake_server(tmp_path_factory.mktemp("image-training"))
    yield server
    server.close()


@pytest.fixture(scope="module")
def client(server):
    return server.client


def upload(client, name: str, data: bytes, kind: str) -> str:
    response = client.post("/files/upload", files={"file": (name, data, kind)})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_the_base_must_be_the_stored_lite0(server, client):
    response = client.post("/api/training/start", json={**IMAGES, "dataset_path": "x.zip"})
    assert response.status_code == 404, response.text
    assert "efficientnet-lite0" in response.json()["detail"] and "kiln pipeline" in response.json()["detail"]
    store_lite0(ModelStore(server.settings.model_store_dir))
    response = client.post("/api/training/start", json={**IMAGES, "base_model": "resnet50", "dataset_path": "x.zip"})
    assert response.status_code == 404 and "holds: efficientnet-lite0" in response.json()["detail"]


def test_an_uploaded_zip_or_tar_of_class_folders_starts_a_training(server, client):
    store_lite0(ModelStore(server.settings.model_store_dir))
    images = digit_pngs(per_class=3)
    started = client.post("/api/training/start", json={**IMAGES, "dataset_path": upload(client, "d.zip", zip_bytes(images),
                                                                                         "application/zip")})
    assert started.status_code == 202, started.text
    task = client.get(f"/tasks/{started.json()['task_id']}").json()
    assert task["parameters"]["image_size"] == 224 and task["parameters"]["train_blocks"] == 0
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in images.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    tar_id = upload(client, "d.tar", buffer.getvalue(), "application/x-tar")
    assert client.post("/api/training/start", json={**IMAGES, "dataset_path": tar_id, "train_blocks": 2}).status_code == 202


@pytest.mark.parametrize(("dataset", "says"), [
    (None, "image folder"),
    ("/etc", "not under an allowed dataset root"),
    ("../../etc", "not under an allowed dataset root"),
    ("no-such-upload", "no file with id or name"),
])
def test_bad_datasets_are_422_naming_dataset_path(server, client, dataset, says):
    store_lite0(ModelStore(server.settings.model_store_dir))
    body = {**IMAGES, **({"dataset_path": dataset} if dataset else {})}
    response = client.post("/api/training/start", json=body)
    assert response.status_code == 422, response.text
    assert "dataset_path" in response.json()["detail"] and says in response.json()["detail"]


def test_a_csv_or_a_bad_archive_is_422(server, client):
    store_lite0(ModelStore(server.settings.model_store_dir))
    csv_id = upload(client, "rows.csv", b"text,label\na,b\nc,d\n", "text/csv")
    response = client.post("/api/training/start", json={**IMAGES, "dataset_path": csv_id})
    assert response.status_code == 422 and "text/csv" in response.json()["detail"]
    escaping = upload(client, "evil.zip", zip_bytes({"../x/1.png": b"1", "a/1.png": b"1"}), "application/zip")
    response = client.post("/api/training/start", json={**IMAGES, "dataset_path": escaping})
    assert response.status_code == 422 and "outside the archive" in response.json()["detail"]


@pytest.mark.parametrize(("change", "field"), [({"image_size": 8}, "image_size"), ({"train_blocks": 99}, "train_blocks")])
def test_bad_image_parameters_are_422(client, change, field):
    response = client.post("/api/training/start", json={**IMAGES, "dataset_path": "x", **change})
    assert response.status_code == 422 and field in response.json()["detail"]


def test_a_directory_under_the_dataset_root_is_accepted(server, client):
    store_lite0(ModelStore(server.settings.model_store_dir))
    root = server.settings.training_dataset_roots[0] / "digits"
    for name, data in digit_pngs(per_class=2).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    for reference in (str(root), "digits/"):
        response = client.post("/api/training/start", json={**IMAGES, "dataset_path": reference})
        assert response.status_code == 202, response.text
