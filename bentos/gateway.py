"""The gateway service: Kiln's whole REST API, with model work delegated to the model worker."""

from __future__ import annotations

import time
from typing import Any

import bentoml

from bentos.api import create_app
from bentos.audio import AudioService
from bentos.models import ServedModel, served_models
from bentos.worker import ModelWorker
from kiln.catalog import UnknownModel, load_catalog
from kiln.errors import ModelNotAvailable
from kiln.settings import get_settings

app = create_app()


@bentoml.service(name="kiln-gateway", traffic={"timeout": 300})
@bentoml.asgi_app(app, path="/")
class Gateway:
    worker = bentoml.depends(ModelWorker)
    audio = bentoml.depends(AudioService)

    def __init__(self) -> None:
        self.settings = get_settings()
        self.catalog = load_catalog(self.settings.catalog_file)
        self.models: dict[str, ServedModel] = served_models()
        self.schemas = {name: model.schema() for name, model in self.models.items()}
        self.device = "cpu"
        self.started = time.time()

    def resolve(self, name: str) -> ServedModel:
        """The served model called ``name``; 404 if no such model, 503 if it is known but not built yet."""
        if name in self.models:
            return self.models[name]
        if name in self.catalog.names():
            raise ModelNotAvailable(
                name, f"It is in the catalog but not built yet: run `kiln pipeline --model {name}`, then restart the server."
            )
        raise UnknownModel(name, sorted(self.models))

    async def infer(self, model: str, items: list[Any], batching: bool) -> list[dict[str, Any]]:
        import aiohttp

        requests = [{"model": model, "item": item} for item in items]
        call = self.worker.to_async.infer if batching else self.worker.to_async.infer_unbatched
        try:
            return await call(requests)
        except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError):
            # A pooled connection to the worker went stale; inference is idempotent, so retry once.
            return await call(requests)

    async def worker_status(self) -> dict[str, Any]:
        try:
            return {"status": "healthy", "models": await self.worker.to_async.describe()}
        except Exception as exc:  # the worker being down is a health result, not a server error
            return {"status": f"unhealthy: {type(exc).__name__}", "models": {}}

    def endpoints(self) -> list[str]:
        return sorted(app.openapi()["paths"])
