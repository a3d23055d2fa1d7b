"""The gateway service: Kiln's whole REST API, with model work delegated to the model worker."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import bentoml

from bentos.api import create_app
from bentos.api.access import ServerRoutesGuard
from bentos.audio import AudioService
from bentos.coalesce import Coalescer
from bentos.models import ServedModel, served_models
from bentos.options import tracing
from bentos.worker import ModelWorker
from kiln.catalog import UnknownModel, load_catalog
from kiln.errors import KilnError, ModelNotAvailable, Timeout
from kiln.logs import LogDirectory, setup_logging
from kiln.serving.download_records import DownloadRecords
from kiln.serving.downloads import DagsterGraphQL, DownloadManager
from kiln.serving.stats import LatencyWindow
from kiln.settings import get_settings
from kiln.store import ModelStore

app = create_app()
log = logging.getLogger("kiln.gateway")


class WorkerError(KilnError):
    """An error the model worker reported, re-raised with the worker's status and code."""

    def __init__(self, payload: dict[str, Any]):
        super().__init__(payload["message"], payload.get("details"))
        self.status_code = int(payload.get("status", 500))
        self.code = payload.get("code", "INTERNAL_ERROR")


class PredictionTimeout(Timeout):
    """The whole prediction (queue + worker) exceeded the request's timeout."""


# BentoML's access log is off: the API's own middleware writes one structured line per request.
@bentoml.service(
    name="kiln-gateway", traffic={"timeout": 300}, logging={"access": {"enabled": False}}, tracing=tracing(get_settings())
)
@bentoml.asgi_app(app, path="/")
class Gateway:
    worker = bentoml.depends(ModelWorker)
    audio = bentoml.depends(AudioService)

    def __init__(self) -> None:
        self.settings = get_settings()
        setup_logging("gateway", self.settings.logs_dir, self.settings.log_level, self.settings.log_max_bytes, self.settings.log_backups)
        logging.getLogger("uvicorn.access").disabled = True  # kiln.access writes one structured line per request
        self.catalog = load_catalog(self.settings.catalog_file)
        self.models: dict[str, ServedModel] = served_models()
        self.schemas = {name: model.schema() for name, model in self.models.items()}
        self.device = "cpu"
        self.started = time.time()
        self.last_refresh = time.monotonic()
        self.requests = LatencyWindow(self.settings.stats_window_seconds)  # end-to-end /predict requests
        self.per_model: dict[str, LatencyWindow] = {}
        self.downloads = DownloadManager(
            ModelStore(self.settings.model_store_dir),
            DagsterGraphQL(f"http://{self.settings.host}:{self.settings.dagster_port}"),
            records=DownloadRecords(app.state.access.database),  # migrated by the app's start-up
        )
        self.logs = LogDirectory(self.settings.logs_dir)
        self.coalescers: dict[str, Coalescer] = {}
        log.info("gateway ready", extra={"served_models": sorted(self.models)})

    def refresh_models(self, force: bool = False) -> None:
        """Pick up models the pipeline made servable since start-up (at most every 2 s unless forced)."""
        if not force and time.monotonic() - self.last_refresh < 2.0:
            return
        self.last_refresh = time.monotonic()
        models = served_models()
        self.schemas = {name: self.schemas.get(name) or model.schema() for name, model in models.items()}
        self.models = models

    def resolve(self, name: str) -> ServedModel:
        """The served model called ``name``; 404 if no such model, 503 if it is known but not built yet."""
        if name not in self.models:
            self.refresh_models()
        if name in self.models:
            return self.models[name]
        if name in self.catalog.names():
            raise ModelNotAvailable(
                name, f"It is in the catalog but not built yet: run `kiln pipeline --model {name}` (or POST /models/download)."
            )
        raise UnknownModel(name, sorted(self.models))

    async def infer(
        self, model: str, items: list[Any], batching: bool, priority: int = 0, timeout: float | None = None
    ) -> list[dict[str, Any]]:
        requests = [{"model": model, "item": item, "priority": priority, "timeout": timeout} for item in items]
        started = time.perf_counter()
        ok = False
        try:
            try:
                results = await asyncio.wait_for(self._submit(model, requests, batching), timeout)
            except asyncio.TimeoutError as exc:
                raise PredictionTimeout(
                    f"Prediction with '{model}' did not finish within the {timeout} s timeout", {"timeout": timeout}
                ) from exc
            errors = [r["__error__"] for r in results if isinstance(r, dict) and "__error__" in r]
            if errors:
                raise WorkerError(errors[0])
            ok = True
            return results
        finally:
            seconds = time.perf_counter() - started
            self.requests.record(seconds, ok=ok, items=len(items))
            window = self.per_model.get(model) or self.per_model.setdefault(model, LatencyWindow(self.settings.stats_window_seconds))
            window.record(seconds, ok=ok, items=len(items))

    async def _send(self, requests: list[dict[str, Any]], batching: bool) -> list[dict[str, Any]]:
        import aiohttp

        call = self.worker.to_async.infer if batching else self.worker.to_async.infer_unbatched
        try:
            return await call(requests)
        except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError):
            # A pooled connection to the worker went stale; inference is idempotent, so retry once.
            return await call(requests)

    def _submit(self, model: str, requests: list[dict[str, Any]], batching: bool):
        """With batching, concurrent requests for a model share worker calls; without, each goes alone."""
        if not batching or self.settings.coalesce_in_flight <= 0:
            return self._send(requests, batching)
        if model not in self.coalescers:
            self.coalescers[model] = Coalescer(
                lambda merged: self._send(merged, True), self.settings.coalesce_in_flight, self.settings.max_batch_size
            )
        return self.coalescers[model].submit(requests)

    async def control(self, action: str, **kwargs: Any) -> dict[str, Any]:
        """Call a worker control API (scale, load, unload, retry, optimize); worker errors become KilnErrors."""
        reply = await getattr(self.worker.to_async, action)(**kwargs)
        if "__error__" in reply:
            raise WorkerError(reply["__error__"])
        return reply["result"]

    async def worker_stats(self, window_seconds: float = 0.0) -> dict[str, Any]:
        return await self.worker.to_async.stats(window_seconds=window_seconds)

    async def worker_status(self) -> dict[str, Any]:
        try:
            return {"status": "healthy", "models": await self.worker.to_async.describe()}
        except Exception as exc:  # the worker being down is a health result, not a server error
            return {"status": f"unhealthy: {type(exc).__name__}", "models": {}}

    def endpoints(self) -> list[str]:
        return sorted(app.openapi()["paths"])


Gateway.add_asgi_middleware(ServerRoutesGuard, api=app)  # BentoML's own routes: /metrics, /livez, ...
