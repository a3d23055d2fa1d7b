"""Data tasks over files of the files store.

- ``data_processing`` (seed 002's example): a CSV, JSON or JSONL file converted, filtered, or grouped and
  aggregated into a new stored file, with ``records_processed``.
- ``batch_predict``: a served model run over a file of inputs; one result per input, stored as JSONL.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from kiln.errors import InvalidInput, KilnError
from kiln.tasks.context import TaskContext
from kiln.tasks.registry import Inputs, TaskType

FORMATS = {"csv": "text/csv", "json": "application/json", "jsonl": "application/x-ndjson"}
AGGREGATIONS = ("count", "sum", "mean", "min", "max", "median", "nunique")


class BadData(KilnError):
    """The input file cannot be processed as asked (a missing column, unreadable rows): the task fails."""

    status_code = 422
    code = "VALIDATION_ERROR"


class Filter(BaseModel):
    column: str = Field(min_length=1, max_length=200)
    op: Literal["==", "!=", ">", ">=", "<", "<=", "contains", "in"] = "=="
    value: Any


class DataProcessingParameters(BaseModel):
    input_file: str = Field(min_length=1, max_length=255, description="A file id, or the name of one of your uploads")
    operation: Literal["convert", "filter", "aggregate"] = "convert"
    output_format: Literal["csv", "json", "jsonl"] = "json"
    columns: list[str] | None = Field(None, description="Keep only these columns")
    filters: list[Filter] = Field(default_factory=list, description="Rows must pass all of them (filter)")
    group_by: list[str] = Field(default_factory=list, description="Group rows by these columns (aggregate)")
    aggregations: dict[str, Literal[AGGREGATIONS]] = Field(  # type: ignore[valid-type]
        default_factory=dict, description='Column -> count|sum|mean|min|max|median|nunique (aggregate)')
    sort_by: str | None = None
    descending: bool = False
    limit: int | None = Field(None, ge=1, le=100_000_000)

    @model_validator(mode="after")
    def some_aggregation(self) -> DataProcessingParameters:
        if self.operation == "aggregate" and not self.aggregations:
            raise ValueError("an aggregate needs aggregations: at least one column -> function")
        return self


def read_table(path: Path, content_type: str) -> Any:
    import pandas as pd

    try:
        if content_type == "text/csv" or content_type == "text/plain":
            return pd.read_csv(path)
        if content_type == "application/x-ndjson":
            return pd.read_json(path, lines=True)
        if content_type == "application/json":
            data = json.loads(path.read_text())
            return pd.json_normalize(data if isinstance(data, list) else data.get("records", [data]))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadData(f"The input file could not be read as {content_type}: {exc}") from exc
    raise BadData(f"Files of type {content_type} are not tables: use a CSV, JSON or JSONL file")


def require_columns(frame: Any, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise BadData(f"{what}: no column {', '.join(map(repr, missing))} in the input (columns: {', '.join(map(str, frame.columns))})")


def apply_filter(frame: Any, rule: Filter) -> Any:
    column = frame[rule.column]
    if rule.op == "contains":
        return frame[column.astype(str).str.contains(str(rule.value), regex=False)]
    if rule.op == "in":
        values = rule.value if isinstance(rule.value, list) else [rule.value]
        return frame[column.isin(values)]
    try:
        mask = {"==": column == rule.value, "!=": column != rule.value, ">": column > rule.value, ">=": column >= rule.value,
                "<": column < rule.value, "<=": column <= rule.value}[rule.op]
    except TypeError as exc:
        raise BadData(f"filter on {rule.column!r}: cannot compare its values with {rule.value!r} ({exc})") from exc
    return frame[mask]


def write_table(frame: Any, output_format: str, path: Path) -> None:
    if output_format == "csv":
        frame.to_csv(path, index=False)
    elif output_format == "jsonl":
        frame.to_json(path, orient="records", lines=True, date_format="iso")
    else:
        frame.to_json(path, orient="records", date_format="iso", indent=1)


def check_input_file(parameters: Any, inputs: Inputs) -> None:
    inputs.file(parameters.input_file, field="parameters.input_file")


def data_processing(parameters: DataProcessingParameters, context: TaskContext) -> dict[str, Any]:
    source = context.inputs.file(parameters.input_file)
    context.progress(5, f"reading {source.filename}")
    frame = read_table(context.files.path(source), source.content_type)
    processed = len(frame)
    if parameters.operation in ("filter", "convert"):
        for rule in parameters.filters:
            require_columns(frame, [rule.column], "filter")
            frame = apply_filter(frame, rule)
    context.progress(50, f"{parameters.operation} of {processed} records")
    if parameters.operation == "aggregate":
        require_columns(frame, parameters.group_by + list(parameters.aggregations), "aggregate")
        if parameters.group_by:
            frame = frame.groupby(parameters.group_by, dropna=False).agg(parameters.aggregations).reset_index()
        else:
            frame = frame.agg(parameters.aggregations).to_frame().T
    if parameters.columns:
        require_columns(frame, parameters.columns, "columns")
        frame = frame[parameters.columns]
    if parameters.sort_by:
        require_columns(frame, [parameters.sort_by], "sort_by")
        frame = frame.sort_values(parameters.sort_by, ascending=not parameters.descending)
    if parameters.limit:
        frame = frame.head(parameters.limit)
    stem = Path(source.filename).stem
    name = f"{stem}.{parameters.operation}.{parameters.output_format}"
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / name
        write_table(frame, parameters.output_format, out)
        context.progress(90, f"storing {name}")
        stored = context.files.save_path(out, name, FORMATS[parameters.output_format], context.owner_id,
                                         f"{parameters.operation} of {source.filename} (task {context.task_id})", context.task_id)
    context.files.mark(source, "processed")
    return {"output_file": stored.id, "output_filename": stored.filename, "download_url": f"/files/{stored.id}/download",
            "records_processed": processed, "records_written": len(frame), "columns": [str(c) for c in frame.columns],
            "input_file": source.id, "sha256": stored.sha256}


class BatchPredictParameters(BaseModel):
    model: str = Field(min_length=1, max_length=128, description="A served model (see GET /models)")
    input_file: str = Field(min_length=1, max_length=255, description="A file id or name: JSON list, JSONL, CSV or text lines")
    input_column: str | None = Field(None, description="For CSV/JSON records: the column that holds the input")
    batch_size: int = Field(32, ge=1, le=256)


def read_inputs(path: Path, content_type: str, column: str | None) -> list[Any]:
    """The inputs of a batch prediction, one per record."""
    if content_type == "text/plain":
        return [line for line in path.read_text().splitlines() if line.strip()]
    if content_type == "application/json":
        data = json.loads(path.read_text())
        if not isinstance(data, list):
            raise BadData("A JSON input file must hold a list of inputs (or of records with input_column)")
        return [row[column] if column else row for row in data] if column else data
    if content_type == "application/x-ndjson":
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return [row[column] for row in rows] if column else rows
    frame = read_table(path, content_type)
    if not column:
        if len(frame.columns) != 1:
            raise BadData(f"The CSV has {len(frame.columns)} columns: say which one holds the input (input_column)")
        column = str(frame.columns[0])
    require_columns(frame, [column], "input_column")
    return frame[column].tolist()


def batch_predict(parameters: BatchPredictParameters, context: TaskContext) -> dict[str, Any]:
    source = context.inputs.file(parameters.input_file)
    try:
        inputs = read_inputs(context.files.path(source), source.content_type, parameters.input_column)
    except KeyError as exc:
        raise BadData(f"input_column {exc} is missing from a record") from exc
    if not inputs:
        raise InvalidInput("input_file", "the file holds no inputs")
    context.progress(1, f"{len(inputs)} inputs for {parameters.model}")
    lines, model_info = [], None
    for start in range(0, len(inputs), parameters.batch_size):
        chunk = inputs[start : start + parameters.batch_size]
        answer = context.client.predict_batch(parameters.model, chunk)
        model_info = answer["model_info"]
        lines += [json.dumps({"index": start + i, "result": r}) for i, r in enumerate(answer["result"])]
        context.progress(100 * (start + len(chunk)) / len(inputs), f"{start + len(chunk)}/{len(inputs)} predicted")
    name = f"{Path(source.filename).stem}.{parameters.model}.predictions.jsonl"
    stored = context.files.save_bytes(("\n".join(lines) + "\n").encode(), name, "application/x-ndjson", context.owner_id,
                                      f"{parameters.model} predictions for {source.filename}", context.task_id)
    return {"output_file": stored.id, "output_filename": stored.filename, "download_url": f"/files/{stored.id}/download",
            "records_processed": len(inputs), "model_info": model_info, "input_file": source.id}


TYPES = [
    TaskType("data_processing", "Convert, filter or aggregate a CSV/JSON/JSONL file into a new file", DataProcessingParameters,
             data_processing, check_input_file),
    TaskType("batch_predict", "Run a served model over a file of inputs; results as a JSONL file", BatchPredictParameters,
             batch_predict, check_input_file),
]
