"""Seed 001's LLM fine-tuning after training: generate from a finished LoRA task's adapter (``test``) and
merge the adapter into its base as a new stored model registered in MLflow with its lineage (``merge``).

``test`` stays a synchronous request, as seed 001 documents it (its answer is ``{response}``): the base with its
adapter is loaded once and kept (the last few, by adapter), so a second prompt costs only generation.
``merge`` documents no answer and writes a full model: it is the ``llm_merge`` task."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from kiln.errors import Conflict, KilnError, NotFound
from kiln.store import ModelStore, StoredModel, fingerprint_of
from kiln.training.requests import store_name


def finished_adapter(task: Any, store: ModelStore) -> StoredModel:
    """The stored result of a completed causal_lm training task, with its adapter; 409 while it is not done."""
    if task.task_type != "training" or task.parameters.get("model_type") != "causal_lm":
        raise NotFound(f"No LLM fine-tuning with task id '{task.id}'", {"task_id": task.id})
    if task.status != "completed":
        raise Conflict(f"The fine-tuning is {task.status}, not completed: test and merge need its adapter",
                       {"task_id": task.id, "status": task.status})
    result = task.result or {}
    model = None
    for version in store.versions(result.get("model_name", "")):
        if version.version == result.get("model_version"):
            model = version
    if model is None or not (model.path / "adapter" / "adapter_config.json").is_file():
        raise NotFound(f"The adapter of task '{task.id}' is no longer in the model store", {"task_id": task.id})
    return model


class LoadedAdapters:
    """Base + adapter models kept loaded, keyed by the adapter's stored version and checksum (least recently
    used dropped first). Loading is serialized; each model generates for one request at a time (a seeded
    sampling sets torch's global generator)."""

    def __init__(self, capacity: int = 2):
        self.capacity = capacity
        self.loaded: OrderedDict[tuple[str, str], tuple[Any, Any, threading.Lock]] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, model: StoredModel) -> tuple[Any, Any, threading.Lock]:
        from kiln.finetune import load_adapter, load_tokenizer

        key = (str(model.path), model.sha256)
        with self.lock:
            if key not in self.loaded:
                base = Path(model.info.get("base_path", ""))
                if not (base / "config.json").is_file():
                    raise NotFound(f"The base model of {model.name} ({model.info.get('base')}) is no longer in the store")
                self.loaded[key] = (load_adapter(base, model.path / "adapter"), load_tokenizer(model.path), threading.Lock())
                while len(self.loaded) > self.capacity:
                    self.loaded.popitem(last=False)
            self.loaded.move_to_end(key)
            return self.loaded[key]


ADAPTERS = LoadedAdapters()


def test_adapter(model: StoredModel, prompt: str, max_tokens: int, temperature: float, seed: int) -> str:
    from kiln.finetune import generate

    loaded, tokenizer, busy = ADAPTERS.get(model)
    with busy:
        return generate(loaded, tokenizer, prompt, max_tokens, temperature, seed)


def merge(model: StoredModel, output_path: str, store: ModelStore, tracker: Any) -> dict[str, Any]:
    """Fold the adapter into a full-precision copy of the base, store it as ``output_path``'s name, register it."""
    from kiln.finetune import load_tokenizer, merge_adapter

    name = store_name(output_path, field="output_path")
    base = Path(model.info.get("base_path", ""))
    if not (base / "config.json").is_file():
        raise NotFound(f"The base model of {model.name} ({model.info.get('base')}) is no longer in the store")
    fingerprint = fingerprint_of({"recipe": "merge", "adapter": model.sha256})
    lineage = {"kiln.base": str(model.info.get("base")), "kiln.dataset_sha256": str(model.info.get("dataset_sha256")),
               "kiln.adapter_run": str(model.info.get("mlflow_run_id")), "kiln.adapter_model": f"{model.name}/{model.version}",
               "kiln.stage": "merge"}
    with tracker.run(run_name=f"merge {name}", tags=lineage) as run:
        info = {"source": "merge", "base": model.info.get("base"), "adapter": f"{model.name}/{model.version}",
                "dataset_sha256": model.info.get("dataset_sha256"), "mlflow_run_id": run.info.run_id}
        with store.stage(name, fingerprint, "text-generation", info) as staging:
            merge_adapter("causal-lm", base, model.path / "adapter", staging, None)
            load_tokenizer(model.path).save_pretrained(str(staging))
        merged = store.find(name, fingerprint)
        if merged is None:
            raise KilnError(f"The merged model {name} was not stored")
        loss = float(model.info.get("training", {}).get("final_train_loss", 0.0))
        tracker.log_params({"adapter_sha256": model.sha256, "merged_sha256": merged.sha256})
    registration = tracker.register(merged, run.info.run_id, "negative_train_loss", -loss)
    merged = store.set_info(merged, registry_version=registration.version)
    return {"model_name": merged.name, "model_version": merged.version, "mlflow_run_id": run.info.run_id,
            "registered_version": registration.version, "message": f"merged into the model store as {name!r}"}
