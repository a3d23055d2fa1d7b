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


def evaluate_text_classifier(engine: Engine, texts: list[str], gold: list[int], batch_size: int = 64) -> dict[str, float]:
    """Accuracy, macro F1 and the confusion matrix (``confusion_<true>_<predicted>`` counts) on held-out text."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    texts, gold = list(texts), list(gold)
    if not texts:
        raise KilnError("No held-out examples to evaluate on")
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths: less padding
    predicted = [0] * len(texts)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        for index, result in zip(chunk, engine.predict([texts[i] for i in chunk])):
            predicted[index] = result["class_index"]
    labels = list(range(len(engine.labels)))
    matrix = confusion_matrix(gold, predicted, labels=labels)
    metrics = {
        "accuracy": float(accuracy_score(gold, predicted)),
        "f1_macro": float(f1_score(gold, predicted, average="macro")),
        "test_examples": float(len(gold)),
    }
    for i in labels:
        for j in labels:
            metrics[f"confusion_{engine.labels[i]}_{engine.labels[j]}"] = float(matrix[i, j])
    return metrics


def confusion_matrix_figure(metrics: dict[str, float], labels: list[str], title: str = ""):
    """A matplotlib figure of the ``confusion_*`` counts (rows: true label, columns: predicted).

    A bare ``Figure``, outside pyplot: it switches no backend (forcing Agg here used to stop a notebook from
    showing any plot) and needs no closing. ``savefig`` and ``mlflow.log_figure`` take it; a notebook shows
    it with ``display(figure)`` under ``%matplotlib inline``.
    """
    from matplotlib.figure import Figure

    counts = [[metrics[f"confusion_{t}_{p}"] for p in labels] for t in labels]
    figure = Figure(figsize=(4, 3.5))
    axes = figure.add_subplot()
    axes.imshow(counts, cmap="Blues")
    darkest = max(max(row) for row in counts) or 1
    for i, row in enumerate(counts):
        for j, value in enumerate(row):  # white on the dark cells, black on the light ones
            axes.text(j, i, f"{int(value)}", ha="center", va="center", color="white" if value > darkest / 2 else "black")
    axes.set_xticks(range(len(labels)), labels)
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title or f"accuracy {metrics.get('accuracy', 0):.3f}")
    figure.tight_layout()
    return figure


def evaluate(engine: Engine, workspace: Path, dataset_path: Path | str | None = None) -> dict[str, float]:
    if engine.task == "classification":
        return evaluate_classifier(engine)
    if engine.task == "sentence-embedding":
        return evaluate_embedding(engine, workspace / "assets" / "eval" / "sentence_triplets.jsonl")
    if engine.task == "text-classification":
        if dataset_path is None:
            raise KilnError(f"Model '{engine.name}': a text classifier is evaluated on its dataset's test split; none recorded")
        from kiln.datasets import load_saved_dataset

        test = load_saved_dataset(Path(dataset_path))["test"]
        return evaluate_text_classifier(engine, test["text"], test["label"])
    if engine.task in ("image-classification", "object-detection", "face-recognition"):
        from kiln.vision import evaluation as vision

        check = {"image-classification": vision.evaluate_image_classifier, "object-detection": vision.evaluate_detector,
                 "face-recognition": vision.evaluate_faces}[engine.task]
        return check(engine.model)
    raise KilnError(f"No evaluation defined for task '{engine.task}'")
