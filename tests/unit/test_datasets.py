"""The vendored VADER movie sentences: loading, the fixed split, and the great-expectations rules."""

from pathlib import Path

import pandas as pd
import pytest

from kiln.datasets import (
    LABELS,
    QualityRules,
    SplitSpec,
    dataset_dir,
    load_text_dataset,
    read_vader_movie_reviews,
    validate_text_dataset,
)
from kiln.errors import NotFound
from kiln.settings import WORKSPACE


def test_all_sentences_are_read_and_binarized_by_sign():
    rows = read_vader_movie_reviews(dataset_dir(WORKSPACE, "vader-movie-reviews"))
    assert len(rows) == 10_605  # ids 1..10605 (the file's last line has no newline)
    assert all((row["label"] == 1) == (row["score"] > 0) for row in rows)
    assert all(-4 <= row["score"] <= 4 and row["text"] for row in rows)
    assert 0.45 < sum(row["label"] for row in rows) / len(rows) < 0.55


def test_the_split_is_fixed_disjoint_and_complete():
    first = load_text_dataset(WORKSPACE)
    second = load_text_dataset(WORKSPACE)
    assert {name: len(part) for name, part in first.items()} == {"train": 8485, "validation": 1060, "test": 1060}
    assert first["test"]["text"][:20] == second["test"]["text"][:20]
    train, test = set(first["train"]["text"]), set(first["test"]["text"])
    assert len(train & test) <= 2  # the source itself holds two duplicated sentences
    assert first["train"].features["label"].names == LABELS


def test_a_limited_split_is_a_prefix_of_the_same_shuffle():
    small = load_text_dataset(WORKSPACE, spec=SplitSpec(limit=200))
    assert sum(len(part) for part in small.values()) == 200


def test_unknown_dataset_is_not_found(tmp_path: Path):
    with pytest.raises(NotFound):
        load_text_dataset(tmp_path, "no-such-data")


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    data = load_text_dataset(WORKSPACE, spec=SplitSpec(limit=1000))
    return pd.concat([part.to_pandas() for part in data.values()], ignore_index=True)


def outcome(frame: pd.DataFrame, rules: QualityRules | None = None) -> dict[str, bool]:
    return {result.name: result.passed for result in validate_text_dataset(frame, rules)}


def test_the_real_data_passes_every_rule(frame):
    assert outcome(frame) == dict.fromkeys(["schema", "no_nulls", "label_balance", "text_length", "duplicate_rate"], True)


def test_each_rule_catches_its_problem(frame):
    with_nulls = frame.copy()
    with_nulls.loc[:9, "text"] = None
    assert outcome(with_nulls)["no_nulls"] is False

    positives_only = frame[frame["label"] == 1].reset_index(drop=True)
    assert outcome(positives_only)["label_balance"] is False

    assert outcome(frame, QualityRules(max_text_chars=40))["text_length"] is False

    duplicated = pd.concat([frame, frame.iloc[:50]], ignore_index=True)
    assert outcome(duplicated)["duplicate_rate"] is False

    results = {r.name: r for r in validate_text_dataset(frame.drop(columns=["label"]))}
    assert results["schema"].passed is False and results["schema"].observed["missing"] == ["label"]
