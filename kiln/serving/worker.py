"""The model worker's logic: per-model instance pools (lazy load, scale to N, idle unload), predictions
split over idle instances, and the control actions (scale, load, unload, retry, optimize, free memory).

Framework-free: ``bentos.worker.ModelWorker`` is its BentoML service, and route tests run it in process
with small engines. Control actions answer errors as data (``kiln.serving.protocol``).
"""

from __future__ import annotations

import gc
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kiln.errors import Conflict
from kiln.serving.autoscaler import Autoscaler
from kiln.serving.dispatch import PredictRequest, predict_split, run_grouped, split_instances
from kiln.serving.memory import process_memory_mb, trim_process_memory
from kiln.serving.protocol import VARIANT_KEY, error_reply
from kiln.serving.variants import EAGER, load_variant, parse_choice, read_manifest, wanted_variant
from kiln.settings import Settings

log = logging.getLogger("kiln.worker")


class Worker:
    """``discover()`` gives the servable models {name: spec with ``.name``}; ``load(spec)`` loads one engine."""

    def __init__(self, settings: Settings, discover: Callable[[], dict[str, Any]], load: Callable[[Any], Any]):
        from kiln.db import Database
        from kiln.serving.scaling_log import ScalingLog

        self.settings = settings
        self.load_engine = load
        self.scaling = ScalingLog(Database(settings.records_database_url))
        self.described: dict[str, dict[str, Any]] = {}
        self.variant_override: dict[str, str] = {}  # set by the optimize action, cleared by retry
        parse_choice(settings.serve_variant, "")  # a misspelt KILN_SERVE_VARIANT fails at start, not on first load
        from kiln.device_registry import resolve_setting

        # KILN_DEVICE, resolved once: a CUDA device this torch cannot use fails the start, with the reason;
        # "auto" is resolved at the first load (it asks torch, and importing torch is a second of every cold
        # start that the ONNX variants and the routes never need)
        self._placement = None if settings.device == "auto" else resolve_setting(settings.device)
        # Threads for the extra instances a split batch runs on (the calling thread runs the first).
        self.executor = ThreadPoolExecutor(max(1, settings.max_instances - 1), thread_name_prefix="kiln-split")
        self.autoscaler = Autoscaler(
            discover=discover,
            loader=self._load,
            idle_ttl_seconds=settings.idle_ttl_seconds,
            max_instances=settings.max_instances,
            window_seconds=settings.stats_window_seconds,
            autoscale_max_instances=min(settings.max_instances, settings.autoscale_max_instances or (os.cpu_count() or 1)),
            scale_up_utilization=settings.scale_up_utilization,
            scale_down_idle_seconds=settings.scale_down_idle_seconds,
            can_grow=self._has_memory_for_one_more,
            on_scale=self.scaling.record,
        )
        from kiln.scaling.sampler import TrafficSampler

        self.traffic = TrafficSampler(settings, self.scaling.database, self.autoscaler, self.scaling.record)

    def start(self) -> None:
        """Preload what KILN_PRELOAD_MODELS asks for, and start the reaper thread."""
        wanted = [n.strip() for n in self.settings.preload_models.split(",") if n.strip()]
        for name in sorted(self.autoscaler.specs) if wanted == ["all"] else wanted:
            self.autoscaler.pool(name).load()
        self.autoscaler.start(self.settings.autoscaler_interval_seconds)
        self.traffic.start()
        log.info("model worker ready", extra={"models": sorted(self.autoscaler.specs), "preloaded": wanted,
                                             "idle_ttl_seconds": self.settings.idle_ttl_seconds})

    @property
    def device(self) -> str:
        return self._resolved_placement()[0]

    @property
    def device_reason(self) -> str:
        return self._resolved_placement()[1]

    def _resolved_placement(self) -> tuple[str, str]:
        if self._placement is None:
            from kiln.device_registry import resolve_setting

            self._placement = resolve_setting(self.settings.device)
        return self._placement

    def stop(self) -> None:
        self.autoscaler.stop()
        self.traffic.stop()
        self.scaling.close()
        self.executor.shutdown(wait=False, cancel_futures=True)

    def _variant_for(self, spec: Any) -> str:
        if self.device != "cpu":  # the exported variants run on ONNX Runtime's CPU provider: on a GPU, the eager model
            return EAGER
        if spec.name in self.variant_override:
            return self.variant_override[spec.name]
        path = getattr(spec, "path", None)
        manifest = read_manifest(path) if path is not None else None
        return wanted_variant(parse_choice(self.settings.serve_variant, spec.name), manifest)

    def _load(self, spec: Any) -> Any:
        started = time.perf_counter()
        variant = self._variant_for(spec)
        threads = self.settings.torch_threads or self.settings.instance_threads  # as the torch engines get
        if getattr(spec, "path", None) is None:
            engine = self.load_engine(spec)
            engine.variant, engine.variant_info = EAGER, {"variant": EAGER}
        else:
            engine = load_variant(spec.name, spec.task, spec.path, variant, lambda: self.load_engine(spec), threads)
        if engine.variant == EAGER:
            engine.place(self.device)
        self.described[spec.name] = engine.describe()
        log.info("model loaded", extra={"model_name": spec.name, "variant": engine.variant,
                                        "load_seconds": round(time.perf_counter() - started, 3)})
        return engine

    def _has_memory_for_one_more(self, name: str) -> bool:
        """Grow a pool only while the machine keeps free memory for three more copies of the model."""
        import psutil

        size = self.described.get(name, {}).get("memory_bytes") or 0
        return psutil.virtual_memory().available > max(3 * size, 256 << 20)

    # --- predictions ---

    def _predict(self, name: str, items: list[Any], priority: int, timeout: float | None) -> list[Any]:
        """One forward pass, or, when the model has several idle instances and the batch is large
        enough, one per instance on its own thread (each instance runs one torch thread)."""
        pool = self.autoscaler.pool(name)
        limit = split_instances(len(items), self.settings.max_instances, self.settings.min_split_items)
        with pool.lease_many(limit, priority, timeout, items=len(items)) as engines:
            outputs = predict_split(engines, items, self.executor)
            variant = getattr(engines[0], "variant", EAGER)
        # Which variant answered travels with each result (the gateway strips it into X-Model-Variant).
        for output in outputs:
            if isinstance(output, dict):
                output[VARIANT_KEY] = variant
        return outputs

    def infer(self, requests: list[PredictRequest]) -> list[Any]:
        return run_grouped(requests, self._predict)

    infer_unbatched = infer  # the service offers it with adaptive batching (infer) and without

    # --- state ---

    def describe(self) -> dict[str, Any]:
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

    def stats(self, window_seconds: float = 0.0) -> dict[str, Any]:
        scaler = self.autoscaler
        return {
            "models": scaler.snapshots(window_seconds or None),
            "idle_ttl_seconds": scaler.idle_ttl_seconds,
            "reaper_interval_seconds": self.settings.autoscaler_interval_seconds,
            "reaper_running": scaler.reaper_running,
            "reaper_runs": scaler.reaper_runs,
            "max_instances": scaler.max_instances,
            "autoscale_max_instances": scaler.autoscale_max_instances,
            "scale_up_utilization": scaler.scale_up_utilization,
            "scale_down_idle_seconds": scaler.scale_down_idle_seconds,
            "started_at": scaler.started_at,
            "process": {"pid": os.getpid(), "rss_mb": process_memory_mb(), "threads": self.settings.worker_threads},
        }

    # --- control: each answers its result, or the error as data ---

    @staticmethod
    def _control(action: Callable[[], Any]) -> Any:
        try:
            return action()
        except Exception as exc:
            return error_reply(exc)

    def scale(self, model_name: str, target_instances: int) -> Any:
        return self._control(lambda: self.autoscaler.pool(model_name).scale(target_instances))

    def load(self, model_name: str) -> Any:
        return self._control(lambda: self.autoscaler.pool(model_name).load())

    def unload(self, model_name: str) -> Any:
        def run() -> Any:
            result = self.autoscaler.pool(model_name).unload()
            gc.collect()
            return result

        return self._control(run)

    def retry(self, model_name: str) -> Any:
        def run() -> Any:
            pool = self.autoscaler.pool(model_name)
            self.variant_override.pop(model_name, None)  # back to the configured variant (KILN_SERVE_VARIANT)
            return pool.reset()

        return self._control(run)

    def optimize(self, model_name: str) -> Any:
        return self._control(lambda: self._optimize(model_name))

    def _optimize(self, model_name: str) -> dict[str, Any]:
        """Switch to the gated ONNX variant the pipeline packaged; without one, quantize the torch model."""
        pool = self.autoscaler.pool(model_name)
        spec = self.autoscaler.specs[model_name]
        manifest = read_manifest(spec.path) if getattr(spec, "path", None) is not None else None
        if manifest is not None and manifest["selected"] != EAGER:
            return self._switch_variant(pool, spec, manifest["selected"])
        return self._quantize(pool, model_name)

    def _switch_variant(self, pool: Any, spec: Any, variant: str) -> dict[str, Any]:
        current = (pool.engine() and pool.engine().variant) or self._variant_for(spec)
        if current == variant:
            raise Conflict(f"Model '{spec.name}' already serves its gated variant {variant}", {"variant": variant})
        self.variant_override[spec.name] = variant
        instances = max(1, len(pool.instances), pool.floor)
        pool.unload()  # busy instances finish their request first, then go
        pool.scale(instances)
        served = pool.engine().variant
        pool.optimization = {"method": f"serve the gated variant {variant}", "variant": served}
        fallback = self.described.get(spec.name, {}).get("variant_fallback")
        if fallback:  # it did not load: eager serves, and says why
            pool.optimization["fallback"] = fallback
        return {"instances_changed": instances, "variant": served, "previous_variant": current,
                "optimization": pool.optimization}

    def _quantize(self, pool: Any, model_name: str) -> dict[str, Any]:
        from kiln.serving.optimize import can_quantize, quantize_dynamic_int8

        if pool.optimization is not None:
            raise Conflict(f"Model '{model_name}' is already optimized: {pool.optimization['method']}", {"optimization": pool.optimization})
        with pool.lease() as engine:  # loads the model if needed, so there is something to optimize
            if not can_quantize(engine):
                raise Conflict(f"Model '{model_name}' has no torch Linear layers to quantize")
        reports: list[dict[str, Any]] = []

        def change(engine: Any) -> Any:
            engine, report = quantize_dynamic_int8(engine)
            reports.append(report)
            self.described[model_name] = engine.describe()
            return engine

        changed = pool.transform(change, {"method": "dynamic int8 quantization (torch.ao, Linear layers)"})
        if reports:
            pool.optimization = {**pool.optimization, **{k: reports[0][k] for k in ("bytes_before", "bytes_after", "seconds")}}
        return {"instances_changed": changed, "optimization": pool.optimization}

    def free_memory(self, idle_seconds: float = 0.0) -> Any:
        return self._control(lambda: self._free_memory(idle_seconds))

    def _free_memory(self, idle_seconds: float) -> dict[str, Any]:
        """Unload instances idle for ``idle_seconds`` (0: every instance not serving now), gc, trim the heap."""
        before = process_memory_mb()
        unloaded = {}
        for name, pool in list(self.autoscaler.pools.items()):
            count = pool.reap_idle(idle_seconds) if idle_seconds > 0 else pool.unload()["unloaded"]
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
