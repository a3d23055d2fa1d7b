"""The model worker: loads every served model once, and runs inference with adaptive batching."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import bentoml

from bentos.models import served_models
from kiln.engines import load_engine
from kiln.settings import get_settings

SETTINGS = get_settings()


@bentoml.service(
    name="kiln-model-worker",
    workers=1,
    traffic={"timeout": 300},
    # BentoML 1.4.39 recycles the caller's client session every 100 requests / 300 s and the request
    # that triggers it fails with "Cannot write to closing transport"; over a local socket there is
    # nothing to gain from recycling, so keep one session (the gateway also retries once).
    runner_connection={"max_requests": 1_000_000_000, "max_age": 1e9},
)
class ModelWorker:
    def __init__(self) -> None:
        import torch

        if SETTINGS.torch_threads:
            torch.set_num_threads(SETTINGS.torch_threads)
        self.load_seconds: dict[str, float] = {}
        self.engines = {}
        for name, model in served_models().items():
            started = time.perf_counter()
            self.engines[name] = load_engine(model.task, model.path, name)
            self.load_seconds[name] = time.perf_counter() - started

    def _run(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Group a (possibly merged) batch by model, run each group as one forward pass, keep the order."""
        groups: dict[str, list[int]] = defaultdict(list)
        for index, request in enumerate(requests):
            groups[request["model"]].append(index)
        results: list[dict[str, Any]] = [{}] * len(requests)
        for name, indexes in groups.items():
            engine = self.engines.get(name)
            if engine is None:
                raise bentoml.exceptions.NotFound(f"Model '{name}' is not loaded in this worker")
            outputs = engine.predict([requests[i]["item"] for i in indexes])
            for index, output in zip(indexes, outputs, strict=True):
                results[index] = output
        return results

    @bentoml.api(batchable=True, max_batch_size=SETTINGS.max_batch_size, max_latency_ms=SETTINGS.max_latency_ms)
    def infer(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Adaptive batching: concurrent calls are merged into one list before they reach here."""
        return self._run(requests)

    @bentoml.api
    def infer_unbatched(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self._run(requests)

    @bentoml.api
    def describe(self) -> dict[str, Any]:
        return {
            name: {**engine.describe(), "loaded": True, "load_seconds": round(self.load_seconds[name], 3)}
            for name, engine in self.engines.items()
        }
