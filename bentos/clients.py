"""The gateway's side of the services behind it: what the API routes depend on.

- ``ModelRegistry``: which models this server serves (BentoML's model store) and the catalog;
- ``WorkerClient``: predictions (with coalescing and timeouts) and pool control in the model worker;
- ``SpeechClient``: the audio service's engines.

Each takes the service it talks to (a ``bentoml.depends`` proxy, or any object with the same async
methods), so route tests run them on fakes. Every call goes through ``call_service``: one retry on a
stale connection, one error protocol (``kiln.serving.protocol``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from kiln.catalog import Catalog, UnknownModel
from kiln.errors import KilnError, ModelNotAvailable, Timeout
from kiln.serving.coalesce import Coalescer
from kiln.serving.dispatch import PredictRequest
from kiln.serving.protocol import VARIANT_KEY, ServiceError, is_error, raise_for_error
from kiln.serving.stats import LatencyWindow
from kiln.serving.variants import EAGER
from kiln.settings import Settings


class ServiceUnreachable(KilnError):
    status_code = 503
    code = "SERVICE_UNAVAILABLE"


class PredictionTimeout(Timeout):
    """The whole prediction (queue + worker) exceeded the request's timeout."""


def _stale_connection_errors() -> tuple[type[BaseException], ...]:
    import aiohttp

    return (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError)


async def call_service(service: str, target: Any, method: str, **kwargs: Any) -> Any:
    """``await target.<method>(**kwargs)``, retried once when a pooled connection went stale (every
    call Kiln makes to its services is idempotent), with the service's error payload re-raised."""
    call = getattr(getattr(target, "to_async", target), method)
    stale = _stale_connection_errors()
    try:
        try:
            reply = await call(**kwargs)
        except stale:
            reply = await call(**kwargs)
    except KilnError:
        raise
    except Exception as exc:
        raise ServiceUnreachable(
            f"The {service} is not reachable: {type(exc).__name__}: {exc}", {"service": service, "error_type": "engine_error"}
        ) from exc
    return raise_for_error(reply)


class ModelRegistry:
    """The served models (newest Kiln model per name in BentoML's store) and the catalog."""

    def __init__(self, catalog: Catalog, discover: Callable[[], dict[str, Any]], refresh_seconds: float = 2.0):
        self.catalog = catalog
        self.discover = discover
        self.refresh_seconds = refresh_seconds
        self.models: dict[str, Any] = discover()
        self._schemas: dict[tuple[str, str], Any] = {}  # (name, bento tag): a new version reads its own
        self.last_refresh = time.monotonic()

    def refresh(self, force: bool = False) -> None:
        """Pick up models the pipeline made servable since start-up (at most every few seconds unless forced)."""
        if not force and time.monotonic() - self.last_refresh < self.refresh_seconds:
            return
        self.last_refresh = time.monotonic()
        self.models = self.discover()

    def schema(self, model: Any) -> Any:
        """The input rules of a served model (read once from its config files)."""
        key = (model.name, model.tag)
        schema = self._schemas.get(key)
        if schema is None:
            schema = self._schemas[key] = model.schema()
        return schema

    def resolve(self, name: str) -> Any:
        """The served model called ``name``; 404 if no such model, 503 if it is known but not built yet."""
        if name not in self.models:
            self.refresh()
        if name in self.models:
            return self.models[name]
        if name in self.catalog.names():
            raise ModelNotAvailable(
                name, f"It is in the catalog but not built yet: run `kiln pipeline --model {name}` (or POST /models/download)."
            )
        raise UnknownModel(name, sorted(self.models))


class WorkerClient:
    """Predictions and pool control in the model worker, with end-to-end request statistics."""

    service = "model worker"

    def __init__(self, worker: Any, settings: Settings):
        self.worker = worker
        self.settings = settings
        self.requests = LatencyWindow(settings.stats_window_seconds)  # end-to-end /predict requests
        self.per_model: dict[str, LatencyWindow] = {}
        self.coalescers: dict[str, Coalescer] = {}

    async def infer(
        self, model: str, items: list[Any], batching: bool, priority: int = 0, timeout: float | None = None
    ) -> list[Any]:
        return (await self.infer_with_variant(model, items, batching, priority, timeout))[0]

    async def infer_with_variant(
        self, model: str, items: list[Any], batching: bool, priority: int = 0, timeout: float | None = None
    ) -> tuple[list[Any], str]:
        """The results, and the model variant that computed them (``eager-fp32``, ``onnx-fp32``, ``onnx-int8``)."""
        requests: list[PredictRequest] = [
            {"model": model, "item": item, "priority": priority, "timeout": timeout} for item in items
        ]
        started = time.perf_counter()
        ok = False
        try:
            try:
                results = await asyncio.wait_for(self._submit(model, requests, batching), timeout)
            except asyncio.TimeoutError as exc:
                raise PredictionTimeout(
                    f"Prediction with '{model}' did not finish within the {timeout} s timeout", {"timeout": timeout}
                ) from exc
            failed = next((r for r in results if is_error(r)), None)
            if failed is not None:
                raise_for_error(failed)
            ok = True
            variants = {r.pop(VARIANT_KEY, None) for r in results if isinstance(r, dict)}
            variants.discard(None)
            # One answer, one variant: a batch split while the variant was being switched names both.
            return results, "+".join(sorted(variants)) or EAGER
        finally:
            seconds = time.perf_counter() - started
            self.requests.record(seconds, ok=ok, items=len(items))
            window = self.per_model.get(model) or self.per_model.setdefault(model, LatencyWindow(self.settings.stats_window_seconds))
            window.record(seconds, ok=ok, items=len(items))

    def _send(self, requests: list[PredictRequest], batching: bool):
        return call_service(self.service, self.worker, "infer" if batching else "infer_unbatched", requests=requests)

    def _submit(self, model: str, requests: list[PredictRequest], batching: bool):
        """With batching, concurrent requests for a model share worker calls; without, each goes alone."""
        if not batching or self.settings.coalesce_in_flight <= 0:
            return self._send(requests, batching)
        if model not in self.coalescers:
            self.coalescers[model] = Coalescer(
                lambda merged: self._send(merged, True), self.settings.coalesce_in_flight, self.settings.max_batch_size
            )
        return self.coalescers[model].submit(requests)

    async def control(self, action: str, **kwargs: Any) -> dict[str, Any]:
        """A pool control call (scale, load, unload, retry, optimize, free_memory)."""
        return await call_service(self.service, self.worker, action, **kwargs)

    async def stats(self, window_seconds: float = 0.0) -> dict[str, Any]:
        return await call_service(self.service, self.worker, "stats", window_seconds=window_seconds)

    async def status(self) -> dict[str, Any]:
        """``{"status": "healthy", "models": ...}``, or unhealthy with the reason: a health result, not an error."""
        try:
            return {"status": "healthy", "models": await call_service(self.service, self.worker, "describe")}
        except (ServiceUnreachable, ServiceError) as exc:
            return {"status": f"unhealthy: {exc.message}", "models": {}}


class SpeechClient:
    """The audio service's engines (synthesis, recognition, voices, cache)."""

    service = "audio service"

    def __init__(self, audio: Any):
        self.audio = audio

    async def call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        return await call_service(self.service, self.audio, method, **kwargs)
