from pathlib import Path

import pytest

from kiln.catalog import UnknownModel, load_catalog
from kiln.errors import KilnError
from kiln.settings import WORKSPACE


def test_shipped_catalog_has_its_models():
    catalog = load_catalog(WORKSPACE / "assets" / "catalog.yaml")
    assert catalog.names()[:4] == ["example", "minilm", "minilm-sentiment", "digits-diffusion"]
    assert catalog.get("example").source == "train"
    minilm = catalog.get("minilm")
    assert (minilm.source, minilm.task) == ("package", "sentence-embedding")
    sentiment = catalog.get("minilm-sentiment")
    assert (sentiment.source, sentiment.id, sentiment.dataset) == ("finetune", "minilm", "vader-movie-reviews")
    assert sentiment.task == "text-classification"
    diffusion = catalog.get("digits-diffusion")
    assert (diffusion.source, diffusion.id, diffusion.task) == ("train", "digits-ddpm", "text-to-image")
    assert (diffusion.primary_metric, diffusion.min_metric) == ("conditional_accuracy", 0.9)


def test_shipped_catalog_has_the_packaged_vision_models_with_their_weights_folders():
    from kiln.sources import package_model_dir

    catalog = load_catalog(WORKSPACE / "assets" / "catalog.yaml")
    tasks = {"efficientnet-lite0": "image-classification", "opencv-detectors": "object-detection", "dlib-faces": "face-recognition"}
    for name, task in tasks.items():
        entry = catalog.get(name)
        assert (entry.source, entry.task) == ("package", task)
        folder = package_model_dir(entry.id)  # only the weights folder, never the package's code
        assert folder.name in ("models", "data") and not list(folder.glob("*.so"))
    assert "unstated" in catalog.get("efficientnet-lite0").licence


@pytest.mark.parametrize(
    "fine_tune, message",
    [
        ({"id": "nope", "dataset": "d"}, "must name a downloaded base model"),
        ({"id": "example", "dataset": "d"}, "must name a downloaded base model"),  # trained, not downloaded
        ({"id": "base"}, "needs a dataset"),
    ],
)
def test_a_fine_tune_needs_a_downloaded_base_and_a_dataset(tmp_path, fine_tune, message):
    import yaml

    models = [
        {"name": "base", "source": "package", "id": "pkg", "task": "sentence-embedding"},
        {"name": "example", "source": "train", "id": "digits-mlp", "task": "classification"},
        {"name": "tuned", "source": "finetune", "task": "text-classification", **fine_tune},
    ]
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump({"models": models}))
    with pytest.raises(KilnError, match=message):
        load_catalog(path)


def test_unknown_model_names_the_available_ones():
    catalog = load_catalog(WORKSPACE / "assets" / "catalog.yaml")
    with pytest.raises(UnknownModel) as caught:
        catalog.get("nope")
    assert caught.value.status_code == 404
    assert "example" in str(caught.value) and "minilm" in str(caught.value)


@pytest.mark.parametrize(
    "text, problem",
    [
        ("models: [{name: a, source: ftp, id: x, task: t}]", "source"),
        ("models: [{name: 'Bad Name', source: path, id: x, task: t}]", "name"),
        ("models: [{name: a, source: path, id: x, task: t}, {name: a, source: path, id: y, task: t}]", "Duplicate"),
        ("nothing: here", "models"),
        ("models: [{name: a, source: package, id: x, task: sentence-embedding, vocoder: y}]", "vocoder: belongs to a text-to-speech"),
        ("models: [{name: a, source: package, id: x, task: text-to-speech, vocoder: y}]", "fetched from the hub or a path"),
    ],
)
def test_invalid_catalogs_are_refused_with_the_reason(tmp_path: Path, text: str, problem: str):
    path = tmp_path / "catalog.yaml"
    path.write_text(text)
    with pytest.raises(KilnError, match=problem):
        load_catalog(path)


def test_missing_catalog_says_where_it_looked(tmp_path: Path):
    with pytest.raises(KilnError, match="not found"):
        load_catalog(tmp_path / "absent.yaml")
