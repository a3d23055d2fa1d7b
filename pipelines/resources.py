"""Typed Dagster resources over Kiln's stores. Tests build them with temporary paths."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from kiln.catalog import Catalog, load_catalog
from kiln.store import ModelStore, StoredModel
from kiln.tracking import DAGSTER_RUN_TAG, Registration, Tracker


class KilnWorkspace(dg.ConfigurableResource):
    """The catalog, the model store (``KILN_HOME/models``) and Kiln's records database."""

    workspace_dir: str
    catalog_file: str
    model_store_dir: str
    records_url: str = ""  # the traffic samples the scaling predictor learns from live there

    def records(self):
        from kiln.db import Database

        if not self.records_url:
            raise ValueError("KilnWorkspace.records_url is not set: no records database to read")
        database = Database(self.records_url)
        database.migrate()
        return database

    def catalog(self) -> Catalog:
        return load_catalog(Path(self.catalog_file))

    def store(self) -> ModelStore:
        return ModelStore(Path(self.model_store_dir))

    @property
    def workspace(self) -> Path:
        return Path(self.workspace_dir)

    def scratch(self, name: str) -> Path:
        """A working folder beside the model store (downloads, datasets, checkpoints, reports)."""
        path = Path(self.model_store_dir).parent / name
        path.mkdir(parents=True, exist_ok=True)
        return path


class MLflowTracking(dg.ConfigurableResource):
    """MLflow tracking server/store and registry."""

    tracking_uri: str
    artifact_root: str
    experiment: str = "kiln"
    ui_url: str = "http://127.0.0.1:5000"
    # Kiln's records database: its named locks serialize the champion gate across processes and machines.
    records_url: str = ""

    def tracker(self, context: dg.AssetExecutionContext | None = None) -> Tracker:
        """A tracker whose new runs and registered versions carry ``dagster_run_id``: the run of ``context``."""
        tags = {DAGSTER_RUN_TAG: context.run.run_id} if context is not None else {}
        lock = records_lock(self.records_url) if self.records_url else None
        return Tracker(self.tracking_uri, Path(self.artifact_root), self.experiment, self.ui_url, run_tags=tags,
                       gate_lock=lock)


_databases: dict[str, Any] = {}


def records_lock(url: str) -> Any:
    """``Database(url).lock``, one engine per URL and process."""
    from kiln.db import Database

    if url not in _databases:
        _databases[url] = Database(url)
    return _databases[url].lock


class BentoModelStore(dg.ConfigurableResource):
    """BentoML's model store (``BENTOML_HOME/models``). Weights are hard-linked in, never copied twice."""

    def import_champion(self, model: StoredModel, registration: Registration, dagster_run_id: str = "",
                        training_dagster_run_id: str | None = None, optimized: StoredModel | None = None,
                        variants: dict | None = None) -> tuple[str, bool]:
        """Make the registry's champion (``model``, stored in Kiln) servable. Returns (bento model tag, reused).

        Labels name its lineage: ``mlflow_run_id`` (the champion's MLflow run), ``dagster_run_id`` (the Dagster
        run that packaged it) and ``training_dagster_run_id`` (the one that made its MLflow run, i.e. trained or
        fetched it; absent when that run has no such tag). A reused model keeps the labels of its first import.
        """
        import bentoml

        from kiln.files import link_tree, replace_duplicates_with_links
        from kiln.store import MANIFEST

        name = bento_model_name(model.name)
        version = f"v{registration.champion_version}-{model.sha256[:10]}"
        try:
            existing = bentoml.models.get(f"{name}:{version}")
            return str(existing.tag), True
        except bentoml.exceptions.NotFound:
            pass
        labels = {
            "kiln_model": model.name,
            "task": model.task,
            "registry_version": registration.champion_version,
            "mlflow_run_id": registration.champion_run_id,
            "sha256": model.sha256[:32],
        }
        if dagster_run_id:
            labels[DAGSTER_RUN_TAG] = dagster_run_id
        if training_dagster_run_id:
            labels[TRAINING_DAGSTER_RUN_LABEL] = training_dagster_run_id
        metadata = {"kiln": model.to_json()}
        if optimized is not None and variants is not None:
            labels["serve_variant"] = variants["selected"]  # the verdicts are in optimized/variants.json
        with bentoml.models.create(f"{name}:{version}", labels=labels, metadata=metadata) as bento_model:
            link_tree(model.path, Path(bento_model.path), skip=(MANIFEST,))
            (Path(bento_model.path) / MANIFEST).write_text((model.path / MANIFEST).read_text())
            if optimized is not None and variants is not None:
                package_variants(optimized, variants, Path(bento_model.path))
        # BentoML stages models in a temporary folder and copies them into its store: link the copies back.
        canonical = model.file_by_digest() | (optimized.file_by_digest() if optimized is not None else {})
        replace_duplicates_with_links(Path(bentoml.models.get(bento_model.tag).path), canonical)
        return str(bento_model.tag), False


    def champions(self) -> dict[str, object]:
        """The newest Kiln-labelled BentoML model per catalog name (what the gateway serves)."""
        import bentoml

        newest: dict[str, object] = {}
        for model in bentoml.models.list():
            name = model.info.labels.get("kiln_model")
            if name and (name not in newest or model.info.creation_time > newest[name].info.creation_time):
                newest[name] = model
        return dict(sorted(newest.items()))

    def champion_digest(self) -> str:
        """Changes exactly when the set of served champions changes (the sensor's trigger)."""
        from kiln.store import fingerprint_of

        return fingerprint_of(sorted((name, str(model.tag)) for name, model in self.champions().items()))[:16]

    def build_bento(self, workspace: Path, dagster_run_id: str) -> BuiltBento:
        """``bentoml build`` per the workspace's bentofile.yaml, with the champions as its models.

        An existing bento with the same champions is reused. A BentoML 1.4 bento refers to its models by tag
        in the model store (hard links to Kiln's store), so the bundle adds no copy of the weights.
        """
        import bentoml
        import yaml

        from kiln.errors import KilnError
        champions = self.champions()
        if not champions:
            raise KilnError("No champion models in BentoML's store yet: materialize bento_model first (kiln pipeline).")
        digest = self.champion_digest()
        models = {name: str(model.tag) for name, model in champions.items()}
        runs = {name: model.info.labels.get("mlflow_run_id", "") for name, model in champions.items()}
        trained_by = {name: model.info.labels[TRAINING_DAGSTER_RUN_LABEL] for name, model in champions.items()
                      if model.info.labels.get(TRAINING_DAGSTER_RUN_LABEL)}
        config = yaml.safe_load((workspace / "bentofile.yaml").read_text())
        try:
            existing_bentos = bentoml.bentos.list(config["name"])
        except bentoml.exceptions.NotFound:
            existing_bentos = []
        for existing in existing_bentos:
            if existing.info.labels.get("kiln_champions") == digest:
                return BuiltBento(str(existing.tag), True, models, runs, str(existing.path))
        assemble_gateway_routes()
        labels = {"kiln_champions": digest, "dagster_run_id": dagster_run_id}
        labels |= {f"mlflow_run_id.{name}": run for name, run in runs.items()}
        labels |= {f"{TRAINING_DAGSTER_RUN_LABEL}.{name}": run for name, run in trained_by.items()}
        built = bentoml.bentos.build(
            service=config["service"],
            name=config["name"],
            description=config.get("description"),
            include=config.get("include"),
            exclude=config.get("exclude"),
            python=config.get("python"),
            models=list(models.values()),
            labels=labels,
            version=f"{digest[:10]}-{dagster_run_id[:8]}",
            build_ctx=str(workspace),
        )
        return BuiltBento(str(built.tag), False, models, runs, str(built.path))


@dataclass
class BuiltBento:
    tag: str
    reused: bool
    models: dict[str, str] = field(default_factory=dict)
    mlflow_runs: dict[str, str] = field(default_factory=dict)
    path: str = ""


# Bento model label: the Dagster run that made the champion's MLflow run (trained or fetched it).
TRAINING_DAGSTER_RUN_LABEL = "training_dagster_run_id"


def package_variants(optimized: StoredModel, variants: dict, target: Path) -> None:
    """The ONNX exports (hard links) and their gate verdicts, in the bento model's ``optimized/`` folder."""
    import json

    from kiln.files import link_tree
    from kiln.serving.variants import FOLDER, MANIFEST
    from kiln.store import MANIFEST as STORE_MANIFEST

    link_tree(optimized.path, target / FOLDER, skip=(STORE_MANIFEST,))
    (target / FOLDER / MANIFEST).write_text(json.dumps(variants, indent=2))


def bento_model_name(kiln_name: str) -> str:
    return f"kiln-{kiln_name}".replace(".", "-").replace("_", "-")


def assemble_gateway_routes() -> None:
    """BentoML writes the routes of the gateway's mounted app into the bento's schema; the gateway module
    leaves that app empty until the gateway process starts (bentos.api.app_shell), so fill it first."""
    from bentos.api import assemble
    from bentos.gateway import app

    assemble(app)
