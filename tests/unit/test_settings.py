from pathlib import Path

from kiln.settings import WORKSPACE, Settings


def test_defaults_keep_state_in_the_checkout(monkeypatch):
    monkeypatch.delenv("KILN_HOME", raising=False)
    settings = Settings(_env_file=None)
    assert settings.home_dir == WORKSPACE / ".kiln"
    assert settings.tracking_uri == f"sqlite:///{WORKSPACE / 'mlflow' / 'mlflow.db'}"
    assert settings.artifact_root == WORKSPACE / "mlflow" / "artifacts"
    assert settings.bentoml_home == WORKSPACE / ".kiln" / "bentoml"


def test_explicit_home_takes_every_store_along(tmp_path: Path):
    settings = Settings(home=tmp_path, _env_file=None)
    for path in (settings.model_store_dir, settings.bentoml_home, settings.dagster_home, settings.artifact_root):
        assert tmp_path in path.parents
    assert settings.tracking_uri == f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"


def test_environment_variables_are_read(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("KILN_PORT", "8123")
    monkeypatch.setenv("KILN_MLFLOW_TRACKING_URI", "postgresql://127.0.0.1/test")
    monkeypatch.setenv("KILN_ENABLE_BATCHING", "false")
    settings = Settings(_env_file=None)
    assert settings.port == 8123
    assert settings.tracking_uri == "postgresql://127.0.0.1/test"
    assert settings.enable_batching is False
