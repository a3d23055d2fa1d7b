"""MLflow registry and champion gating against a real (temporary sqlite) MLflow store."""

import os
from pathlib import Path

import pytest

from kiln.recipes.digits import DigitsHyperparameters, DigitsMLPRecipe
from kiln.store import ModelStore, fingerprint_of
from kiln.tracking import Tracker


@pytest.fixture
def tracker(tmp_path: Path) -> Tracker:
    return Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "artifacts", "gating-test")


def train(store: ModelStore, seed: int):
    params = DigitsHyperparameters(epochs=1, seed=seed)
    fingerprint = fingerprint_of(DigitsMLPRecipe.fingerprint_inputs(params))
    with store.stage("digits", fingerprint, "classification") as staging:
        DigitsMLPRecipe.train(params, staging)
    return store.find("digits", fingerprint)


def new_run(tracker: Tracker) -> str:
    with tracker.run("test") as run:
        return run.info.run_id


def test_champion_moves_only_on_improvement(tracker: Tracker, tmp_path: Path):
    store = ModelStore(tmp_path / "store")
    first, worse, better = (train(store, seed) for seed in (1, 2, 3))

    r1 = tracker.register(first, new_run(tracker), "accuracy", 0.90)
    assert (r1.version, r1.champion_version, r1.champion_moved) == ("1", "1", True)

    r2 = tracker.register(worse, new_run(tracker), "accuracy", 0.85)
    assert r2.version == "2" and not r2.champion_moved and r2.champion_version == "1"
    assert "does not beat" in r2.reason
    assert str(tracker.champion("digits").version) == "1"

    r3 = tracker.register(better, new_run(tracker), "accuracy", 0.95)
    assert r3.champion_moved and r3.champion_version == "3" and "beats" in r3.reason
    assert str(tracker.champion("digits").version) == "3"
    assert r3.champion_sha256 == better.sha256

    again = tracker.register(first, new_run(tracker), "accuracy", 0.90)
    assert again.reused and again.version == "1" and not again.champion_moved


def test_logged_weights_are_hard_links_and_load_through_mlflow(tracker: Tracker, tmp_path: Path):
    import mlflow

    model = train(ModelStore(tmp_path / "store"), seed=0)
    tracker.register(model, new_run(tracker), "accuracy", 0.9)
    logged = [p for p in (tmp_path / "artifacts").rglob("model.safetensors")]
    assert logged and all(os.path.samefile(p, model.path / "model.safetensors") for p in logged)

    loaded = mlflow.pyfunc.load_model("models:/digits@champion")
    predictions = loaded.predict([[0.0] * 64, [16.0] * 64])
    assert len(predictions) == 2 and set(predictions[0]) >= {"prediction", "probabilities"}


def test_an_experiment_made_meanwhile_by_another_run_is_taken(tracker: Tracker, monkeypatch):
    """Two pipeline workers starting on a fresh store both find no experiment and both create it; the second
    create fails (a unique name) and must take the first one's (seen in CI on the shared Postgres profile)."""
    from mlflow import MlflowClient

    made = tracker.experiment_id()  # the other run's
    real = MlflowClient.get_experiment_by_name
    looks = []

    def look(self, name):  # this run's first look came before the other run created it
        looks.append(name)
        return None if len(looks) == 1 else real(self, name)

    monkeypatch.setattr(MlflowClient, "get_experiment_by_name", look)
    assert tracker.experiment_id() == made
