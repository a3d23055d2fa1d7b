"""The model worker service: ``kiln.serving.worker.Worker`` (pools, splitting, control) behind BentoML
APIs, with adaptive batching on ``infer``. Errors are answered as data (``kiln.serving.protocol``) so
the gateway can answer the right status for each request of a merged batch instead of failing them all.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import bentoml

from bentos.batching import install_bounded_wait
from bentos.models import ServedModel, served_models
from bentos.options import KEEP_RUNNER_CONNECTION, tracing
from kiln.engines import load_engine
from kiln.logs import setup_logging
from kiln.serving.worker import Worker
from kiln.settings import get_settings

SETTINGS = get_settings()
install_bounded_wait(SETTINGS.batch_max_wait_ms)  # before the server makes its dispatchers


def load_served(model: ServedModel) -> Any:
    set_torch_threads()
    return load_engine(model.task, model.path, model.name)


@functools.cache
def set_torch_threads() -> None:
    """torch's intra-op threads, before the first torch engine loads (not at start: the ONNX variants never
    import torch, and importing it is a second of the worker's start)."""
    threads = SETTINGS.torch_threads or SETTINGS.instance_threads
    if threads:
        import torch

        torch.set_num_threads(threads)


@bentoml.service(
    name="kiln-model-worker",
    workers=1,
    # Several calls at once: requests for different models run in parallel, and control calls
    # (stats, load, scale) are not stuck behind inference. Each model's pool serializes its instances.
    threads=SETTINGS.worker_threads,
    traffic={"timeout": 300},
    runner_connection=KEEP_RUNNER_CONNECTION,
    tracing=tracing(SETTINGS),
    # One access line per internal gateway->worker call doubles the logging cost of every prediction.
    logging={"access": {"enabled": False}},
)
class ModelWorker:
    def __init__(self) -> None:
        setup_logging("worker", SETTINGS.logs_dir, SETTINGS.log_level, SETTINGS.log_max_bytes, SETTINGS.log_backups)
        logging.getLogger("uvicorn.access").disabled = True  # kiln.access writes one structured line per request
        self.core = Worker(SETTINGS, served_models, load_served)
        self.autoscaler = self.core.autoscaler
        self.core.start()

    @bentoml.api(batchable=True, max_batch_size=SETTINGS.max_batch_size, max_latency_ms=SETTINGS.max_latency_ms)
    def infer(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:  # PredictRequest dicts: cheap to validate
        """Adaptive batching: concurrent calls are merged into one list before they reach here."""
        return self.core.infer(requests)  # type: ignore[arg-type]

    @bentoml.api
    def infer_unbatched(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self.core.infer(requests)  # type: ignore[arg-type]

    # --- state (async: answered on the event loop, never queued behind inference threads) ---

    @bentoml.api
    async def describe(self) -> dict[str, Any]:
        return self.core.describe()

    @bentoml.api
    async def stats(self, window_seconds: float = 0.0) -> dict[str, Any]:
        return self.core.stats(window_seconds)

    # --- control (sync: loading takes seconds, so it runs in a worker thread) ---

    @bentoml.api
    def scale(self, model_name: str, target_instances: int) -> dict[str, Any]:
        return self.core.scale(model_name, target_instances)

    @bentoml.api
    def load(self, model_name: str) -> dict[str, Any]:
        return self.core.load(model_name)

    @bentoml.api
    def unload(self, model_name: str) -> dict[str, Any]:
        return self.core.unload(model_name)

    @bentoml.api
    def retry(self, model_name: str) -> dict[str, Any]:
        return self.core.retry(model_name)

    @bentoml.api
    def optimize(self, model_name: str) -> dict[str, Any]:
        return self.core.optimize(model_name)

    @bentoml.api
    def free_memory(self, idle_seconds: float = 0.0) -> dict[str, Any]:
        return self.core.free_memory(idle_seconds)


# BentoML 1.4.39 derives each response's media type from a freshly generated JSON schema of the API's
# output type (``IOMixin.mime_type``), about a tenth of the worker's event-loop time under load. These
# APIs answer JSON-able lists and dicts, so state the media type once.
for _api in ModelWorker.apis.values():
    if _api.output_spec.media_type is None and _api.output_spec.mime_type() == "application/json":
        _api.output_spec.media_type = "application/json"
