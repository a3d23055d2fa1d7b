"""The one settings class. Every knob is a ``KILN_*`` environment variable (or a line in ``.env``)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# The workspace is the checkout that holds assets/, notebooks/ and mlflow/ (kiln is installed editable).
WORKSPACE = Path(__file__).resolve().parents[1]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KILN_", env_file=".env", extra="ignore")

    home: Path | None = Field(None, description="Root of all state; default <workspace>/.kiln")
    workspace: Path = Field(WORKSPACE, description="The Kiln checkout (catalog, notebooks, mlflow/)")
    catalog_path: Path | None = Field(None, description="Model catalog; default assets/catalog.yaml")

    mlflow_tracking_uri: str | None = Field(
        None, description="Default sqlite:///mlflow/mlflow.db, or under KILN_HOME when that is set"
    )
    mlflow_artifact_root: Path | None = Field(None, description="Default mlflow/artifacts (or KILN_HOME/mlflow)")
    mlflow_experiment: str = "kiln"

    environment: str = Field("development", description="development | production")
    host: str = "127.0.0.1"
    port: int = 8000
    dagster_port: int = 3000
    mlflow_port: int = 5000

    enable_batching: bool = Field(True, description="Route /predict through the adaptive-batching worker API")
    max_batch_size: int = 64
    max_latency_ms: int = 20_000
    max_inputs_per_request: int = 256
    max_text_chars: int = 10_000
    torch_threads: int = Field(0, description="0 lets torch pick (one per core)")

    # --- pipeline: datasets, optimization, fine-tuning ---
    hf_token: str | None = Field(None, description="Hugging Face token for gated/private hub models (never logged)")

    # --- serving: autoscaler, devices, logs ---

    # --- access control: users, keys, rate limits, security headers ---

    # --- audio: speech synthesis and recognition ---

    @property
    def explicit_home(self) -> bool:
        return self.home is not None

    @property
    def home_dir(self) -> Path:
        return (self.home or self.workspace / ".kiln").resolve()

    @property
    def catalog_file(self) -> Path:
        return self.catalog_path or self.workspace / "assets" / "catalog.yaml"

    @property
    def mlflow_dir(self) -> Path:
        # The default store lives in the checkout's mlflow/; an explicit KILN_HOME takes it along.
        return self.home_dir / "mlflow" if self.explicit_home else self.workspace / "mlflow"

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.mlflow_dir / 'mlflow.db'}"

    @property
    def artifact_root(self) -> Path:
        return (self.mlflow_artifact_root or self.mlflow_dir / "artifacts").resolve()

    @property
    def model_store_dir(self) -> Path:
        return self.home_dir / "models"

    @property
    def bentoml_home(self) -> Path:
        return self.home_dir / "bentoml"

    @property
    def dagster_home(self) -> Path:
        return self.home_dir / "dagster"

    @property
    def logs_dir(self) -> Path:
        return self.home_dir / "logs"

    @property
    def mlflow_ui_url(self) -> str:
        return f"http://{self.host}:{self.mlflow_port}"


@lru_cache
def get_settings() -> Settings:
    return Settings()


def configure_environment(settings: Settings | None = None) -> Settings:
    """Point the libraries Kiln drives at KILN_HOME and keep them offline and quiet.

    Must run before bentoml, mlflow or dagster read their environment (at import for bentoml).
    """
    settings = settings or get_settings()
    for directory in (settings.home_dir, settings.mlflow_dir, settings.artifact_root, settings.dagster_home):
        directory.mkdir(parents=True, exist_ok=True)
    defaults = {
        "BENTOML_HOME": str(settings.bentoml_home),
        "DAGSTER_HOME": str(settings.dagster_home),
        "MLFLOW_TRACKING_URI": settings.tracking_uri,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "BENTOML_DO_NOT_TRACK": "true",
        "GX_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "true",
        "TOKENIZERS_PARALLELISM": "false",
    }
    # Stores always follow Kiln's settings (change them with KILN_* variables); the rest are defaults.
    stores = {"BENTOML_HOME", "DAGSTER_HOME", "MLFLOW_TRACKING_URI"}
    for key, value in defaults.items():
        if key in stores:
            os.environ[key] = value
        else:
            os.environ.setdefault(key, value)
    _install_dagster_yaml(settings)
    return settings


def _install_dagster_yaml(settings: Settings) -> None:
    """DAGSTER_HOME must contain dagster.yaml; the workspace's copy is the source of truth."""
    source = settings.workspace / "dagster.yaml"
    target = Path(os.environ["DAGSTER_HOME"]) / "dagster.yaml"
    if source.exists() and (not target.exists() or target.read_bytes() != source.read_bytes()):
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
