"""The model worker: per-model instance pools (lazy load, scale to N, idle unload) and inference with
adaptive batching. The pool and reaper logic lives in ``kiln.serving.pool``; this class adapts it to
BentoML. Errors are returned as data (``{"__error__": ...}``) so the gateway can answer the right
status for each request of a merged batch instead of failing them all.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

import bentoml

from bentos.models import ServedModel, served_models
from bentos.options import KEEP_RUNNER_CONNECTION, tracing
from kiln.engines import load_engine
from kiln.errors import KilnError
from kiln.logs import setup_logging
from kiln.serving.autoscaler import Autoscaler
from kiln.settings import get_settings

SETTINGS = get_settings()
log = logging.getLogger("kiln.worker")


def error_payload(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, KilnError):
        return {"status": exc.status_code, "code": exc.code, "message": exc.message, "details": exc.details or None}
    log.error("model worker call failed", exc_info=exc)
    return {"status": 500, "code": "INTERNAL_ERROR", "message": f"Model worker error: {type(exc).__name__}: {exc}", "details": None}


def trim_process_memory() -> bool:
    """Ask glibc to hand freed heap pages back to the OS (``malloc_trim``); False where unavailable."""
    try:
        import ctypes

        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):
        return False


def process_memory_mb() -> float:
    import psutil

    return round(psutil.Process().memory_info().rss / 1e6, 1)


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
        import torch

        setup_logging("worker", SETTINGS.logs_dir, SETTINGS.log_level, SETTINGS.log_max_bytes, SETTINGS.log_backups)
        logging.getLogger("uvicorn.access").disabled = True  # kiln.access writes one structured line per request
        threads = SETTINGS.torch_threads or SETTINGS.instance_threads
        if threads:
            torch.set_num_threads(threads)
        self.described: dict[str, dict[str, Any]] = {}
        # Threads for the extra instances a split batch runs on (the calling thread runs the first).
        self.executor = ThreadPoolExecutor(max(1, SETTINGS.max_instances - 1), thread_name_prefix="kiln-split")
        self.autoscaler = Autoscaler(
            discover=served_models,
            loader=self._load,
            idle_ttl_seconds=SETTINGS.idle_ttl_seconds,
            max_instances=SETTINGS.max_instances,
            window_seconds=SETTINGS.stats_window_seconds,
            autoscale_max_instances=min(SETTINGS.max_instances, SETTINGS.autoscale_max_instances or (os.cpu_count() or 1)),
            scale_up_utilization=SETTINGS.scale_up_utilization,
            scale_down_idle_seconds=SETTINGS.scale_down_idle_seconds,
            can_grow=self._has_memory_for_one_more,
        )
        wanted = [n.strip() for n in SETTINGS.preload_models.split(",") if n.strip()]
        for name in sorted(self.autoscaler.specs) if wanted == ["all"] else wanted:
            self.autoscaler.pool(name).load()
        self.autoscaler.start(SETTINGS.autoscaler_interval_seconds)
        log.info(
            "model worker ready",
            extra={"models": sorted(self.autoscaler.specs), "preloaded": wanted, "idle_ttl_seconds": SETTINGS.idle_ttl_seconds},
        )

    def _load(self, model: ServedModel) -> Any:
        started = time.perf_counter()
        engine = load_engine(model.task, model.path, model.name)
        self.described[model.name] = engine.describe()
        log.info("model loaded", extra={"model_name": model.name, "load_seconds": round(time.perf_counter() - started, 3)})
        return engine

    def _has_memory_for_one_more(self, name: str) -> bool:
        """Grow a pool only while the machine keeps free memory for three more copies of the model."""
        import psutil

        size = self.described.get(name, {}).get("memory_bytes") or 0
        return psutil.virtual_memory().available > max(3 * size, 256 << 20)

    def _run(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Group a (possibly merged) batch by model, run each group as one forward pass, keep the order."""
        groups: dict[str, list[int]] = defaultdict(list)
        for index, request in enumerate(requests):
            groups[request["model"]].append(index)
        results: list[dict[str, Any]] = [{}] * len(requests)
        for name, indexes in groups.items():
            group = [requests[i] for i in indexes]
            priority = max(int(r.get("priority") or 0) for r in group)
            timeouts = [r.get("timeout") for r in group]
            timeout = None if any(t is None for t in timeouts) else max(timeouts)
            try:
                outputs = self._predict(name, [r["item"] for r in group], priority, timeout)
            except Exception as exc:  # one model's failure must not fail the other models in the batch
                outputs = [{"__error__": error_payload(exc)}] * len(group)
            for index, output in zip(indexes, outputs, strict=True):
                results[index] = output
        return results

    def _predict(self, name: str, items: list[Any], priority: int, timeout: float | None) -> list[Any]:
        """One forward pass, or, when the model has several idle instances and the batch is large
        enough, one per instance on its own thread (each instance runs one torch thread)."""
        pool = self.autoscaler.pool(name)
        limit = max(1, min(SETTINGS.max_instances, len(items) // SETTINGS.min_split_items))
        with pool.lease_many(limit, priority, timeout, items=len(items)) as engines:
            if len(engines) == 1:
                return engines[0].predict(items)
            size = -(-len(items) // len(engines))
            chunks = [items[i : i + size] for i in range(0, len(items), size)]
            futures = [self.executor.submit(engine.predict, chunk) for engine, chunk in zip(engines[1:], chunks[1:])]
            try:
                outputs = engines[0].predict(chunks[0])
            finally:  # no instance goes back to the pool while a thread still runs on it
                wait(futures)
            for future in futures:
                outputs.extend(future.result())
            return outputs

    @bentoml.api(batchable=True, max_batch_size=SETTINGS.max_batch_size, max_latency_ms=SETTINGS.max_latency_ms)
    def infer(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Adaptive batching: concurrent calls are merged into one list before they reach here."""
        return self._run(requests)

    @bentoml.api
    def infer_unbatched(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self._run(requests)

    # --- state (async: answered on the event loop, never queued behind inference threads) ---

    @bentoml.api
    async def describe(self) -> dict[str, Any]:
        """Every servable model: its engine facts (from its last load) and pool state."""
        out = {}
        for name, snap in self.autoscaler.snapshots().items():
            out[name] = {
                **self.described.get(name, {}),
                "loaded": snap["loaded"],
                "instances": snap["instances"],
                "load_seconds": snap.get("last_load_seconds"),
                "optimized": snap.get("optimized", False),
                "optimization": snap.get("optimization"),
            }
        return out

    @bentoml.api
    async def stats(self, window_seconds: float = 0.0) -> dict[str, Any]:
        scaler = self.autoscaler
        return {
            "models": scaler.snapshots(window_seconds or None),
            "idle_ttl_seconds": scaler.idle_ttl_seconds,
            "reaper_interval_seconds": SETTINGS.autoscaler_interval_seconds,
            "reaper_running": scaler.reaper_running,
            "reaper_runs": scaler.reaper_runs,
            "max_instances": scaler.max_instances,
            "autoscale_max_instances": scaler.autoscale_max_instances,
            "scale_up_utilization": scaler.scale_up_utilization,
            "scale_down_idle_seconds": scaler.scale_down_idle_seconds,
            "started_at": scaler.started_at,
            "process": {"pid": os.getpid(), "rss_mb": process_memory_mb(), "threads": SETTINGS.worker_threads},
        }

    # --- control (sync: loading takes seconds, so it runs in a worker thread) ---

    def _control(self, action, *args) -> dict[str, Any]:
        try:
            return {"result": action(*args)}
        except Exception as exc:
            return {"__error__": error_payload(exc)}

    @bentoml.api
    def scale(self, model_name: str, target_instances: int) -> dict[str, Any]:
        return self._control(lambda: self.autoscaler.pool(model_name).scale(target_instances))

    @bentoml.api
    def load(self, model_name: str) -> dict[str, Any]:
        return self._control(lambda: self.autoscaler.pool(model_name).load())

    @bentoml.api
    def unload(self, model_name: str) -> dict[str, Any]:
        def run():
            result = self.autoscaler.pool(model_name).unload()
            gc.collect()
            return result

        return self._control(run)

    @bentoml.api
    def retry(self, model_name: str) -> dict[str, Any]:
        return self._control(lambda: self.autoscaler.pool(model_name).reset())

    @bentoml.api
    def optimize(self, model_name: str) -> dict[str, Any]:
        from kiln.serving.optimize import can_quantize, quantize_dynamic_int8

        def run():
            from kiln.errors import Conflict

            pool = self.autoscaler.pool(model_name)
            if pool.optimization is not None:
                raise Conflict(f"Model '{model_name}' is already optimized: {pool.optimization['method']}", {"optimization": pool.optimization})
            with pool.lease() as engine:  # loads the model if needed, so there is something to optimize
                if not can_quantize(engine):
                    raise Conflict(f"Model '{model_name}' has no torch Linear layers to quantize")
            reports: list[dict[str, Any]] = []

            def change(engine):
                engine, report = quantize_dynamic_int8(engine)
                reports.append(report)
                self.described[model_name] = engine.describe()
                return engine

            changed = pool.transform(change, {"method": "dynamic int8 quantization (torch.ao, Linear layers)"})
            if reports:
                pool.optimization = {**pool.optimization, **{k: reports[0][k] for k in ("bytes_before", "bytes_after", "seconds")}}
            return {"instances_changed": changed, "optimization": pool.optimization}

        return self._control(run)

    @bentoml.api
    def free_memory(self, idle_seconds: float = 0.0) -> dict[str, Any]:
        """Unload instances idle for ``idle_seconds`` (0: every instance not serving now), gc, trim the heap."""
        before = process_memory_mb()
        unloaded = {}
        for name, pool in list(self.autoscaler.pools.items()):
            if idle_seconds > 0:
                count = pool.reap_idle(idle_seconds)
            else:
                count = pool.unload()["unloaded"]
            if count:
                unloaded[name] = count
        collected = gc.collect()
        cuda_cleared = False
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
                cuda_cleared = True
        except ImportError:
            pass
        trimmed = trim_process_memory()
        after = process_memory_mb()
        log.info("memory freed", extra={"unloaded": unloaded, "rss_before_mb": before, "rss_after_mb": after})
        return {
            "unloaded_instances": unloaded,
            "gc_objects_collected": collected,
            "cuda_cache_cleared": cuda_cleared,
            "heap_trimmed": trimmed,
            "worker_rss_before_mb": before,
            "worker_rss_after_mb": after,
            "worker_freed_mb": round(before - after, 1),
        }


# BentoML 1.4.39 derives each response's media type from a freshly generated JSON schema of the API's
# output type (``IOMixin.mime_type``), about a tenth of the worker's event-loop time under load. These
# APIs answer JSON-able lists and dicts, so state the media type once.
for _api in ModelWorker.apis.values():
    if _api.output_spec.media_type is None and _api.output_spec.mime_type() == "application/json":
        _api.output_spec.media_type = "application/json"
