"""Datasets the workspace ships (assets/datasets/), loaded with `datasets`, and their quality checks.

The one dataset today is Hutto & Gilbert's (ICWSM 2014) movie-review sentences, binarized by sign and
split once with a fixed seed. Quality rules run through great-expectations (imported only when used).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kiln.errors import KilnError, NotFound

VADER_MOVIES = "vader-movie-reviews"
LABELS = ["negative", "positive"]
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class SplitSpec:
    seed: int = 0
    validation_fraction: float = 0.1
    test_fraction: float = 0.1
    limit: int | None = None  # keep only the first N shuffled sentences (small runs and tests)


def dataset_dir(workspace: Path, name: str) -> Path:
    folder = Path(workspace) / "assets" / "datasets" / name
    if not folder.is_dir():
        raise NotFound(f"Unknown dataset '{name}': no folder {folder}", {"dataset": name})
    return folder


def read_vader_movie_reviews(folder: Path) -> list[dict[str, Any]]:
    """Rows of (id, mean score -4..+4, sentence) as {text, score, label}; label is 1 when score > 0."""
    path = Path(folder) / "movieReviewSnippets_GroundTruth.txt"
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):  # not splitlines(): sentences hold U+2028
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 3:
            raise KilnError(f"{path}:{number}: expected 3 tab-separated fields, got {len(parts)}")
        score = float(parts[1])
        rows.append({"text": parts[2].strip(), "score": score, "label": int(score > 0)})
    return rows


def split_rows(rows: list[dict[str, Any]], spec: SplitSpec) -> dict[str, list[dict[str, Any]]]:
    """A fixed shuffled split (same seed, same split): test first, then validation, the rest trains."""
    import numpy as np

    order = np.random.RandomState(spec.seed).permutation(len(rows))
    if spec.limit:
        order = order[: spec.limit]
    n_test = round(len(order) * spec.test_fraction)
    n_validation = round(len(order) * spec.validation_fraction)
    parts = {
        "test": order[:n_test],
        "validation": order[n_test : n_test + n_validation],
        "train": order[n_test + n_validation :],
    }
    return {split: [rows[i] for i in parts[split]] for split in SPLITS}


def load_text_dataset(workspace: Path, name: str = VADER_MOVIES, spec: SplitSpec | None = None):
    """The named dataset as a ``datasets.DatasetDict`` with train/validation/test splits."""
    import datasets

    if name != VADER_MOVIES:
        raise NotFound(f"Unknown dataset '{name}'. Known datasets: {[VADER_MOVIES]}", {"dataset": name})
    rows = read_vader_movie_reviews(dataset_dir(workspace, name))
    features = datasets.Features(
        {
            "text": datasets.Value("string"),
            "score": datasets.Value("float32"),
            "label": datasets.ClassLabel(names=LABELS),
        }
    )
    splits = split_rows(rows, spec or SplitSpec())
    return datasets.DatasetDict(
        {split: datasets.Dataset.from_list(items, features=features) for split, items in splits.items()}
    )


def load_saved_dataset(path: Path):
    import datasets

    return datasets.load_from_disk(str(path))


# --- quality rules (great-expectations) ---


@dataclass(frozen=True)
class QualityRules:
    min_rows: int = 100
    min_minority_share: float = 0.4  # label balance: the rarer label is at least this share
    min_text_chars: int = 2
    max_text_chars: int = 1000
    max_duplicate_rate: float = 0.01


@dataclass
class QualityResult:
    name: str
    passed: bool
    description: str
    observed: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def validate_text_dataset(frame, rules: QualityRules | None = None) -> list[QualityResult]:
    """Run the five dataset checks (schema, nulls, label balance, text length, duplicates) with great-expectations.

    ``frame`` is a pandas DataFrame (one split, or all splits concatenated).
    """
    import great_expectations as gx
    import great_expectations.expectations as gxe

    rules = rules or QualityRules()
    context = gx.get_context(mode="ephemeral")
    source = context.data_sources.add_pandas("kiln")
    batch = source.add_dataframe_asset("dataset").add_batch_definition_whole_dataframe("all").get_batch(
        batch_parameters={"dataframe": frame}
    )

    def run(*expectations) -> tuple[bool, list[dict[str, Any]]]:
        outcomes = [batch.validate(expectation) for expectation in expectations]
        return all(o.success for o in outcomes), [o.result for o in outcomes]

    results = []
    ok, observed = run(
        gxe.ExpectTableColumnsToMatchSet(column_set=["text", "score", "label"], exact_match=False),
        gxe.ExpectTableRowCountToBeBetween(min_value=rules.min_rows),
    )
    missing = sorted({"text", "label"} - set(frame.columns))
    results.append(QualityResult("schema", ok and not missing, "columns text, score, label; enough rows",
                                 {"columns": list(frame.columns), "rows": len(frame), "missing": missing}))
    if missing:
        return results  # the other checks need these columns

    ok, observed = run(gxe.ExpectColumnValuesToNotBeNull(column="text"), gxe.ExpectColumnValuesToNotBeNull(column="label"))
    nulls = int(frame["text"].isna().sum() + frame["label"].isna().sum())
    results.append(QualityResult("no_nulls", ok, "no missing text or label", {"null_values": nulls}))

    share = float(frame["label"].mean()) if len(frame) else 0.0
    ok, _ = run(
        gxe.ExpectColumnValuesToBeInSet(column="label", value_set=[0, 1]),
        gxe.ExpectColumnMeanToBeBetween(
            column="label", min_value=rules.min_minority_share, max_value=1 - rules.min_minority_share
        ),
    )
    results.append(QualityResult("label_balance", ok, f"labels in {{0, 1}}, each at least {rules.min_minority_share:.0%}",
                                 {"positive_share": round(share, 4)}))

    lengths = frame["text"].fillna("").str.len()
    ok, _ = run(
        gxe.ExpectColumnValueLengthsToBeBetween(
            column="text", min_value=rules.min_text_chars, max_value=rules.max_text_chars
        )
    )
    results.append(QualityResult("text_length", ok, f"{rules.min_text_chars}..{rules.max_text_chars} characters",
                                 {"min_chars": int(lengths.min()), "max_chars": int(lengths.max())}))

    duplicate_rate = float(frame["text"].duplicated().mean()) if len(frame) else 0.0
    ok, _ = run(gxe.ExpectColumnValuesToBeUnique(column="text", mostly=1 - rules.max_duplicate_rate))
    results.append(QualityResult("duplicate_rate", ok, f"at most {rules.max_duplicate_rate:.1%} duplicate sentences",
                                 {"duplicate_rate": round(duplicate_rate, 5)}))
    return results
