"""MLflow tracking and registry for Kiln models (mlflow is imported only when used).

Weights logged to MLflow are hard-linked back to the model store, so MLflow holds no second copy.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import unquote, urlparse

from kiln.files import replace_duplicates_with_links
from kiln.store import StoredModel

CHAMPION = "champion"
# The orchestrator run that made an MLflow run (or registered a model version): dagster-mlflow's tag name too.
DAGSTER_RUN_TAG = "dagster_run_id"
SHA_TAG = "kiln.sha256"
METRIC_TAG = "kiln.primary_metric"
METRIC_VALUE_TAG = "kiln.primary_metric_value"

PYFUNC_REQUIREMENTS = ["torch", "transformers", "safetensors", "numpy", "scikit-learn"]


@dataclass
class Registration:
    name: str
    version: str
    run_id: str
    champion_version: str
    champion_run_id: str
    champion_sha256: str
    champion_moved: bool
    reason: str
    reused: bool


class Tracker:
    """MLflow for one caller. ``run_tags`` go on every run it creates and every model version it registers
    (the pipeline puts the Dagster run id there, so each MLflow record names the run that made it)."""

    def __init__(self, tracking_uri: str, artifact_root: Path, experiment: str, ui_url: str = "",
                 run_tags: dict[str, str] | None = None, gate_lock: Any = None):
        self.gate_lock = gate_lock  # (name) -> context manager held across processes, e.g. kiln.db.Database.lock
        self.tracking_uri = tracking_uri
        self.artifact_root = Path(artifact_root)
        self.experiment = experiment
        self.ui_url = ui_url.rstrip("/")
        self.run_tags = dict(run_tags or {})

    @property
    def client(self):
        from mlflow import MlflowClient

        if self.tracking_uri.startswith("sqlite:///"):  # MLflow creates the database file, not its folder
            Path(self.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def experiment_id(self) -> str:
        found = self.client.get_experiment_by_name(self.experiment)
        if found is not None:
            return found.experiment_id
        location = (self.artifact_root / self.experiment).as_uri()
        try:
            return self.client.create_experiment(self.experiment, artifact_location=location)
        except Exception:  # made meanwhile by another run (two pipeline workers on one store): take that one
            found = self.client.get_experiment_by_name(self.experiment)
            if found is None:
                raise
            return found.experiment_id

    @contextmanager
    def run(self, run_name: str, run_id: str | None = None, tags: dict[str, str] | None = None) -> Iterator[Any]:
        """An active MLflow run: new (tagged with ``run_tags`` and ``tags``), or resumed when ``run_id`` is given
        (its tags stay those of the run that created it)."""
        import mlflow

        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        experiment_id = self.experiment_id()
        if run_id is None:
            tags = {**self.run_tags, **(tags or {})}
        with mlflow.start_run(run_id=run_id, experiment_id=None if run_id else experiment_id, run_name=run_name, tags=tags) as active:
            yield active

    def run_exists(self, run_id: str | None) -> bool:
        from mlflow.exceptions import MlflowException

        if not run_id:
            return False
        try:
            self.client.get_run(run_id)
        except MlflowException:
            return False
        return True

    @staticmethod
    def log_params(params: dict[str, Any]) -> None:
        import mlflow

        mlflow.log_params(params)

    @staticmethod
    def log_metrics(metrics: dict[str, float], step: int | None = None) -> None:
        import mlflow

        mlflow.log_metrics(metrics, step=step)

    def run_url(self, run_id: str) -> str:
        run = self.client.get_run(run_id)
        return f"{self.ui_url}/#/experiments/{run.info.experiment_id}/runs/{run_id}"

    def run_metrics(self, run_id: str) -> dict[str, float]:
        return dict(self.client.get_run(run_id).data.metrics)

    def run_tag(self, run_id: str, key: str) -> str | None:
        return self.client.get_run(run_id).data.tags.get(key)

    def registered_version_for(self, name: str, sha256: str):
        """The registry version that already holds exactly these weights, if any."""
        from mlflow.exceptions import MlflowException

        try:
            versions = self.client.search_model_versions(f"name='{name}'")
        except MlflowException:
            return None
        for version in versions:
            if version.tags.get(SHA_TAG) == sha256:
                return version
        return None

    def champion(self, name: str):
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_model_version_by_alias(name, CHAMPION)
        except MlflowException:
            return None

    def register(self, model: StoredModel, run_id: str, primary_metric: str, value: float) -> Registration:
        """Log ``model`` as an MLflow pyfunc model in ``run_id``, register it, and move ``champion`` if it is better.

        Re-registering the same weights reuses their version; the champion moves only on a strictly
        higher primary metric (or when there is none yet). The gate runs under ``gate_lock(name)`` when one
        is given, so candidates registered at the same time on several machines are compared one by one.
        """
        if self.gate_lock is None:
            return self._register(model, run_id, primary_metric, value)
        with self.gate_lock(f"champion-gate:{model.name}"):
            return self._register(model, run_id, primary_metric, value)

    def _register(self, model: StoredModel, run_id: str, primary_metric: str, value: float) -> Registration:
        existing = self.registered_version_for(model.name, model.sha256)
        if existing is not None:
            version, reused = existing, True
        else:
            version, reused = self._log_and_register(model, run_id, primary_metric, value), False
        champion = self.champion(model.name)
        if champion is None:
            moved, reason = True, f"no champion yet; version {version.version} becomes champion"
        elif champion.version == version.version:
            moved, reason = False, f"version {version.version} is already the champion"
        else:
            current = float(champion.tags.get(METRIC_VALUE_TAG, "-inf"))
            moved = value > current
            verdict = "beats" if moved else "does not beat"
            reason = (
                f"candidate version {version.version} {primary_metric}={value:.4f} {verdict} "
                f"champion version {champion.version} {primary_metric}={current:.4f}"
            )
        if moved:
            self.client.set_registered_model_alias(model.name, CHAMPION, version.version)
            champion = version
        return Registration(
            name=model.name,
            version=str(version.version),
            run_id=version.run_id,
            champion_version=str(champion.version),
            champion_run_id=champion.run_id,
            champion_sha256=champion.tags.get(SHA_TAG, ""),
            champion_moved=moved,
            reason=reason,
            reused=reused,
        )

    def _log_and_register(self, model: StoredModel, run_id: str, primary_metric: str, value: float):
        import mlflow

        with self.run(run_name=model.name, run_id=run_id):
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(Path(__file__).with_name("mlflow_model.py")),
                artifacts={"weights": str(model.path)},
                pip_requirements=PYFUNC_REQUIREMENTS,
                metadata={"kiln_task": model.task, "kiln_sha256": model.sha256},
            )
        self.link_logged_weights(info.model_uri, model)
        version = mlflow.register_model(
            info.model_uri,
            model.name,
            tags={**self.run_tags, SHA_TAG: model.sha256, METRIC_TAG: primary_metric, METRIC_VALUE_TAG: str(value)},
        )
        return self.client.get_model_version(model.name, version.version)

    def link_logged_weights(self, model_uri: str, model: StoredModel) -> int:
        """Replace the weight files MLflow copied into its artifact store with hard links to the model store."""
        location = self._local_artifact_dir(model_uri)
        if location is None or not location.exists():
            return 0
        return replace_duplicates_with_links(location, model.file_by_digest())

    def _local_artifact_dir(self, model_uri: str) -> Path | None:
        if model_uri.startswith("file:"):
            return Path(unquote(urlparse(model_uri).path))
        if model_uri.startswith("models:/"):
            logged = self.client.get_logged_model(model_uri.split("/", 1)[1].strip("/"))
            if logged.artifact_location.startswith("file:"):
                return Path(unquote(urlparse(logged.artifact_location).path))
        return None
