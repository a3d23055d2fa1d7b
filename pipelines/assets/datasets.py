"""Stage: the training data, loaded with `datasets` and validated by great-expectations asset checks.

The checks are blocking: if the data breaks a rule, fine-tuning (downstream) does not run.
"""


from dataclasses import asdict

import dagster as dg

from kiln.datasets import VADER_MOVIES, QualityRules, SplitSpec, load_text_dataset
from kiln.files import sha256_file
from kiln.store import fingerprint_of
from pipelines.resources import KilnWorkspace

QUALITY_CHECKS = {
    "schema": "Columns text, score and label are present and the data has enough rows.",
    "no_nulls": "No sentence or label is missing.",
    "label_balance": "Labels are 0/1 and the rarer one is at least min_minority_share of the rows.",
    "text_length": "Every sentence has between min_text_chars and max_text_chars characters.",
    "duplicate_rate": "At most max_duplicate_rate of the sentences are duplicates.",
}


class SentimentDatasetConfig(dg.Config):
    """Which sentences, how they are split, and the quality rules they must pass."""

    limit: int = 0  # 0: all 10,605 sentences; otherwise the first N of the fixed shuffle (quick runs)
    seed: int = 0
    validation_fraction: float = 0.1
    test_fraction: float = 0.1
    min_minority_share: float = 0.4
    min_text_chars: int = 2
    max_text_chars: int = 1000
    max_duplicate_rate: float = 0.01


@dg.asset(
    group_name="data",
    kinds={"huggingface", "pandas"},
    description=(
        "Hutto & Gilbert's movie-review sentences (assets/datasets/vader-movie-reviews, MIT), binarized by sign "
        "and split once into train/validation/test; saved with `datasets`."
    ),
    check_specs=[
        dg.AssetCheckSpec(name, asset="sentiment_dataset", blocking=True, description=text)
        for name, text in QUALITY_CHECKS.items()
    ],
)
def sentiment_dataset(context: dg.AssetExecutionContext, config: SentimentDatasetConfig, kiln: KilnWorkspace):
    import pandas as pd

    from kiln.datasets import validate_text_dataset

    spec = SplitSpec(config.seed, config.validation_fraction, config.test_fraction, config.limit or None)
    data = load_text_dataset(kiln.workspace, VADER_MOVIES, spec)
    source = kiln.workspace / "assets" / "datasets" / VADER_MOVIES / "movieReviewSnippets_GroundTruth.txt"
    fingerprint = fingerprint_of(VADER_MOVIES, sha256_file(source), asdict(spec))
    path = kiln.scratch("datasets") / VADER_MOVIES / fingerprint[:12]
    if not (path / "dataset_dict.json").is_file():
        data.save_to_disk(str(path))
    rows = {split: len(part) for split, part in data.items()}
    context.log.info(f"{VADER_MOVIES}: {rows} at {path}")
    yield dg.Output(
        {"name": VADER_MOVIES, "path": str(path), "fingerprint": fingerprint, "rows": rows, "labels": data["train"].features["label"].names},
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "fingerprint": fingerprint[:12],
            **{f"{split}_rows": count for split, count in rows.items()},
            "positive_share": dg.MetadataValue.float(round(sum(sum(p["label"]) for p in data.values()) / sum(rows.values()), 4)),
            "preview": dg.MetadataValue.md(_preview(data["train"], 5)),
        },
    )
    rules = QualityRules(
        min_minority_share=config.min_minority_share,
        min_text_chars=config.min_text_chars,
        max_text_chars=config.max_text_chars,
        max_duplicate_rate=config.max_duplicate_rate,
    )
    frame = pd.concat([part.to_pandas() for part in data.values()], ignore_index=True)
    for result in validate_text_dataset(frame, rules):
        yield dg.AssetCheckResult(
            check_name=result.name, passed=result.passed, metadata=result.observed, description=result.description
        )


def _preview(split, rows: int) -> str:
    lines = ["| label | score | text |", "|---|---|---|"]
    names = split.features["label"].names
    for row in split.select(range(min(rows, len(split)))):
        text = row["text"].replace("|", "\\|")
        lines.append(f"| {names[row['label']]} | {row['score']:+.2f} | {text} |")
    return "\n".join(lines)
