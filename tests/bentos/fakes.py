"""Fakes for route tests of one surface: the API app (``create_app``) with backends that need no pipeline
run and no BentoML server.

- The model worker is Kiln's real worker logic (``kiln.serving.worker.Worker``: pools, splitting,
  control) over two small engines: ``adder`` (4 numbers in, their sum out) and ``shouter`` (text in,
  upper case out). ``slow_adder`` sleeps, for timeouts.
- The speech surface uses the real audio service class (``bentos.audio.AudioService``) in process:
  its engines ship with their packages, so no pipeline is needed there either.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from kiln.catalog import Catalog, CatalogEntry
from kiln.engines.base import Engine, InputSchema, NumberVector, Text
from kiln.settings import Settings


class InProcess:
    """A service's methods as the async callables a ``bentoml.depends`` proxy offers (``to_async``)."""

    def __init__(self, service: Any):
        self.service = service
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.service, name)

        async def call(**kwargs: Any) -> Any:
            self.calls.append(name)
            if inspect.iscoroutinefunction(method):
                return await method(**kwargs)
            return await asyncio.to_thread(method, **kwargs)

        return call


class AdderEngine(Engine):
    task = "classification"

    def __init__(self, name: str, delay: float = 0.0):
        super().__init__(name, NumberVector(4))
        self.delay = delay

    @classmethod
    def read_schema(cls, path: Path) -> InputSchema:
        return NumberVector(4)

    @classmethod
    def load(cls, path: Path, name: str) -> Engine:
        return cls(name)

    def predict(self, items: list[Any]) -> list[dict[str, Any]]:
        if self.delay:
            time.sleep(self.delay)
        return [{"sum": sum(item)} for item in items]

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "parameters": 4, "memory_bytes": 32}


class ShouterEngine(Engine):
    task = "text-classification"

    def __init__(self, name: str):
        super().__init__(name, Text(100))

    @classmethod
    def read_schema(cls, path: Path) -> InputSchema:
        return Text(100)

    @classmethod
    def load(cls, path: Path, name: str) -> Engine:
        return cls(name)

    def predict(self, items: list[Any]) -> list[dict[str, Any]]:
        return [{"text": item.upper()} for item in items]


@dataclass
class FakeModel:
    """What ``bentos.models.served_models`` answers for one model, without BentoML's store."""

    name: str
    task: str
    engine: type[Engine]
    registry_version: str = "1"
    mlflow_run_id: str = "run-0001"
    dagster_run_id: str = "dagster-0001"
    tag: str = ""
    path: Path = Path("/nonexistent")
    sha256: str = ""
    delay: float = 0.0
    broken: bool = False

    def schema(self) -> InputSchema:
        return self.engine.read_schema(self.path)

    def info(self) -> dict[str, str]:
        return {"model": self.name, "task": self.task, "version": self.registry_version,
                "bento_model": self.tag or f"{self.name}:fake", "mlflow_run_id": self.mlflow_run_id,
                "dagster_run_id": self.dagster_run_id}


def load_fake(model: FakeModel) -> Engine:
    if model.broken:
        raise RuntimeError(f"weights of {model.name} are corrupt")
    if model.engine is AdderEngine:
        return AdderEngine(model.name, model.delay)
    if model.path.exists():  # a real model folder (e.g. the vision models the packages ship)
        return model.engine.load(model.path, model.name)
    return model.engine(model.name)


def fake_models() -> dict[str, FakeModel]:
    return {
        "adder": FakeModel("adder", "classification", AdderEngine),
        "shouter": FakeModel("shouter", "text-classification", ShouterEngine),
        "slow_adder": FakeModel("slow_adder", "classification", AdderEngine, delay=0.5),
    }


CATALOG = Catalog(models=[
    CatalogEntry(name="adder", source="train", id="adder", task="classification"),
    CatalogEntry(name="unbuilt", source="package", id="some_package", task="sentence-embedding"),
])


@dataclass
class FakeServer:
    """The API app with fake backends, and the parts a test may poke."""

    client: TestClient
    settings: Settings
    models: dict[str, FakeModel]
    worker: Any  # kiln.serving.worker.Worker
    admin: dict[str, str]  # headers with the local admin key (admin routes need it, auth on or off)
    task_workers: Any = None  # kiln.tasks.worker.TaskWorkers, when started

    def start_task_workers(self, threads: int = 2, batched_threads: int = 4) -> Any:
        """Real Huey task workers on the server's queue; their calls to the API reach this in-process app."""
        from kiln.client import KilnClient
        from kiln.tasks.runner import worker_key
        from kiln.tasks.worker import TaskWorkers

        self.task_workers = TaskWorkers(self.settings, self.client.app.state.access.database, threads=threads,
                                        batched_threads=batched_threads, client_factory=lambda: KilnClient(api_key=worker_key(self.settings), http=self.client))
        self.task_workers.start()
        return self.task_workers

    def close(self) -> None:
        if self.task_workers is not None:
            self.task_workers.stop(graceful=False)
        self.worker.stop()
        self.client.__exit__(None, None, None)


def fake_server(home: Path, speech: Any = None, **settings: Any) -> FakeServer:
    """``create_app`` on fakes; ``speech`` is an audio service object (default: none installed)."""
    from bentos.api import create_app
    from bentos.api.http.backends import Backends, install_backends
    from bentos.clients import ModelRegistry, SpeechClient, WorkerClient
    from kiln.logs import LogDirectory
    from kiln.serving.download_records import DownloadRecords
    from kiln.serving.downloads import DownloadManager
    from kiln.serving.worker import Worker
    from kiln.store import ModelStore

    config = Settings(home=home, idle_ttl_seconds=0, autoscaler_interval_seconds=0.2, task_progress_seconds=0, **settings)
    models = fake_models()
    worker = Worker(config, lambda: models, load_fake)
    worker.start()
    app = create_app(config)
    client = TestClient(app, raise_server_exceptions=False)
    client.__enter__()  # runs the app's start-up: migrations, the local admin key
    from bentos.api.tasks.events import EventStream
    from kiln.filestore.store import FileStore
    from kiln.scaling.service import ScalingService
    from kiln.tasks.service import TaskService
    from kiln.vision.records import FaceRegistry

    database = app.state.access.database
    files = FileStore(config, database)
    tasks = TaskService(config, database, services=files)
    install_backends(app, Backends(
        settings=config,
        tasks=tasks,
        scaling=ScalingService(config, database, tasks),
        files=files,
        events=EventStream(database, config, app.state.traffic, metrics_seconds=0.5),
        models=ModelRegistry(CATALOG, lambda: models, refresh_seconds=0),
        worker=WorkerClient(InProcess(worker), config),
        speech=SpeechClient(InProcess(speech)) if speech is not None else None,
        downloads=DownloadManager(ModelStore(config.model_store_dir), None, records=DownloadRecords(app.state.access.database)),
        logs=LogDirectory(config.logs_dir),
        faces=FaceRegistry(database, files, config.face_match_threshold),
    ))
    key = (home / "admin.key").read_text().strip() if (home / "admin.key").exists() else ""
    return FakeServer(client, config, models, worker, {"X-API-Key": key})
