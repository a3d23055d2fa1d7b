"""Typed Dagster resources over Kiln's stores. Tests build them with temporary paths."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from kiln.catalog import Catalog, load_catalog
from kiln.store import ModelStore, StoredModel
from kiln.tracking import Registration, Tracker


class KilnWorkspace(dg.ConfigurableResource):
    """The catalog and the model store (``KILN_HOME/models``)."""

    workspace_dir: str
    catalog_file: str
    model_store_dir: str

    def catalog(self) -> Catalog:
        return load_catalog(Path(self.catalog_file))

    def store(self) -> ModelStore:
        return ModelStore(Path(self.model_store_dir))

    @property
    def workspace(self) -> Path:
        return Path(self.workspace_dir)


class MLflowTracking(dg.ConfigurableResource):
    """MLflow tracking server/store and registry."""

    tracking_uri: str
    artifact_root: str
    experiment: str = "kiln"
    ui_url: str = "http://127.0.0.1:5000"

    def tracker(self) -> Tracker:
        return Tracker(self.tracking_uri, Path(self.artifact_root), self.experiment, self.ui_url)


class BentoModelStore(dg.ConfigurableResource):
    """BentoML's model store (``BENTOML_HOME/models``). Weights are hard-linked in, never copied twice."""

    def import_champion(self, model: StoredModel, registration: Registration) -> tuple[str, bool]:
        """Make the registry's champion (``model``, stored in Kiln) servable. Returns (bento model tag, reused)."""
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
        with bentoml.models.create(f"{name}:{version}", labels=labels, metadata={"kiln": model.to_json()}) as bento_model:
            link_tree(model.path, Path(bento_model.path), skip=(MANIFEST,))
            (Path(bento_model.path) / MANIFEST).write_text((model.path / MANIFEST).read_text())
        # BentoML stages models in a temporary folder and copies them into its store: link the copies back.
        replace_duplicates_with_links(Path(bentoml.models.get(bento_model.tag).path), model.file_by_digest())
        return str(bento_model.tag), False


def bento_model_name(kiln_name: str) -> str:
    return f"kiln-{kiln_name}".replace(".", "-").replace("_", "-")
