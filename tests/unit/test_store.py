import os
from pathlib import Path

import pytest

from kiln.files import replace_duplicates_with_links, sha256_file
from kiln.store import ModelStore, fingerprint_of


def test_stage_records_checksums_and_is_found_by_fingerprint(tmp_path: Path):
    store = ModelStore(tmp_path)
    fingerprint = fingerprint_of("recipe", {"a": 1})
    with store.stage("m", fingerprint, "classification", {"note": "x"}) as staging:
        (staging / "weights.bin").write_bytes(b"\x01" * 1000)
        (staging / "sub").mkdir()
        (staging / "sub" / "config.json").write_text("{}")
    model = store.find("m", fingerprint)
    assert model is not None and model.task == "classification" and model.info == {"note": "x"}
    assert model.files["weights.bin"] == sha256_file(model.path / "weights.bin")
    assert set(model.files) == {"weights.bin", "sub/config.json"}
    assert store.find("m", fingerprint_of("recipe", {"a": 2})) is None
    assert store.latest("m").version == model.version


def test_failed_stage_leaves_nothing_behind(tmp_path: Path):
    store = ModelStore(tmp_path)
    with pytest.raises(RuntimeError):
        with store.stage("m", fingerprint_of(1), "t") as staging:
            (staging / "partial.bin").write_bytes(b"half")
            raise RuntimeError("training crashed")
    assert store.versions("m") == []
    assert not any((tmp_path / ".staging").iterdir())


def test_empty_stage_is_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="Nothing was written"):
        with ModelStore(tmp_path).stage("m", fingerprint_of(1), "t"):
            pass


def test_copies_are_replaced_by_hard_links(tmp_path: Path):
    canonical = tmp_path / "store" / "w.bin"
    canonical.parent.mkdir()
    canonical.write_bytes(os.urandom(4096))
    copy_dir = tmp_path / "mlflow"
    copy_dir.mkdir()
    (copy_dir / "w.bin").write_bytes(canonical.read_bytes())
    (copy_dir / "other.bin").write_bytes(os.urandom(4096))
    reclaimed = replace_duplicates_with_links(copy_dir, {sha256_file(canonical): canonical})
    assert reclaimed == 4096
    assert os.path.samefile(copy_dir / "w.bin", canonical)
    assert not os.path.samefile(copy_dir / "other.bin", canonical)
