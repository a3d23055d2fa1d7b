"""Which models this server serves: the newest Kiln model per name in BentoML's model store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import bentoml

from kiln.engines import engine_classes
from kiln.engines.base import InputSchema


@dataclass
class ServedModel:
    name: str
    task: str
    tag: str
    path: Path
    registry_version: str
    mlflow_run_id: str
    sha256: str
    dagster_run_id: str = ""  # the Dagster run that trained or fetched the model

    def schema(self) -> InputSchema:
        return engine_classes()[self.task].read_schema(self.path)

    def info(self) -> dict[str, str]:
        return {
            "model": self.name,
            "task": self.task,
            "version": self.registry_version,
            "bento_model": self.tag,
            "mlflow_run_id": self.mlflow_run_id,
            "dagster_run_id": self.dagster_run_id,
        }


def served_models() -> dict[str, ServedModel]:
    newest: dict[str, tuple[object, bentoml.Model]] = {}
    for model in bentoml.models.list():
        name = model.info.labels.get("kiln_model")
        if not name or model.info.labels.get("task") not in engine_classes():
            continue
        if name not in newest or model.info.creation_time > newest[name][0]:
            newest[name] = (model.info.creation_time, model)
    served = {}
    for name, (_, model) in sorted(newest.items()):
        labels = model.info.labels
        served[name] = ServedModel(
            name=name,
            task=labels["task"],
            tag=str(model.tag),
            path=Path(model.path),
            registry_version=labels.get("registry_version", ""),
            mlflow_run_id=labels.get("mlflow_run_id", ""),
            sha256=labels.get("sha256", ""),
            dagster_run_id=labels.get("dagster_run_id", ""),
        )
    return served
