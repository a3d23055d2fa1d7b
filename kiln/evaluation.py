"""Held-out evaluation per task. Each returns plain metrics; the primary one is named in the catalog."""

from __future__ import annotations

import json
from pathlib import Path

from kiln.engines.base import Engine
from kiln.errors import KilnError


def evaluate_classifier(engine: Engine, test_fraction: float = 0.2, seed: int = 0) -> dict[str, float]:
    """Accuracy and macro F1 on the digits test split the recipe never trained on."""
    from sklearn.metrics import accuracy_score, f1_score

    from kiln.recipes.digits import digits_split

    _, x_test, _, y_test = digits_split(test_fraction, seed)
    predicted = [result["class_index"] for result in engine.predict(x_test.tolist())]
    return {
        "accuracy": float(accuracy_score(y_test, predicted)),
        "f1_macro": float(f1_score(y_test, predicted, average="macro")),
        "test_examples": float(len(y_test)),
    }


def evaluate_embedding(engine: Engine, triplets_file: Path) -> dict[str, float]:
    """Sanity check for sentence embeddings: a paraphrase must sit closer to its anchor than an unrelated sentence.

    ``pair_ranking_accuracy`` is the share of (anchor, paraphrase, unrelated) triplets ranked correctly.
    """
    rows = [json.loads(line) for line in triplets_file.read_text().splitlines() if line.strip()]
    if not rows:
        raise KilnError(f"No evaluation triplets in {triplets_file}")
    anchors = engine.encode([r["anchor"] for r in rows])
    positives = engine.encode([r["positive"] for r in rows])
    negatives = engine.encode([r["negative"] for r in rows])
    positive_cos = (anchors * positives).sum(1)
    negative_cos = (anchors * negatives).sum(1)
    return {
        "pair_ranking_accuracy": float((positive_cos > negative_cos).float().mean()),
        "mean_positive_cosine": float(positive_cos.mean()),
        "mean_negative_cosine": float(negative_cos.mean()),
        "test_examples": float(len(rows)),
    }


def evaluate(engine: Engine, workspace: Path) -> dict[str, float]:
    if engine.task == "classification":
        return evaluate_classifier(engine)
    if engine.task == "sentence-embedding":
        return evaluate_embedding(engine, workspace / "assets" / "eval" / "sentence_triplets.jsonl")
    raise KilnError(f"No evaluation defined for task '{engine.task}'")
