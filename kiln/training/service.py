"""Seed 001's Training APIs over the one task system: start creates a ``training`` task, status reads it
(and its last progress report), stop cancels it (which terminates its Dagster run)."""

from __future__ import annotations

from typing import Any

from kiln.errors import NotFound
from kiln.training.progress import training_status
from kiln.training.requests import store_name


class TrainingService:
    def __init__(self, tasks: Any):
        self.tasks = tasks  # kiln.tasks.service.TaskService
        self.settings = tasks.settings

    def start(self, owner_id: str | None, body: dict[str, Any]) -> dict[str, Any]:
        name = store_name(body.get("output_dir") or "")
        task = self.tasks.create(owner_id, f"Train {body.get('model_type')} {name}", "training", body)
        output_dir = body["output_dir"]
        note = (f"output_dir {output_dir!r} is a model-store name" if output_dir == name else
                f"output_dir {output_dir!r} is not a server path: the model is stored as {name!r}, its last segment")
        return {"task_id": task.id, "status": task.status, "model_name": name, "message": note,
                "status_url": f"/api/training/status/{task.id}"}

    def _training_task(self, task_id: str, owner_id: str | None, see_all: bool):
        task = self.tasks.get(task_id, owner_id, see_all)
        if task.task_type != "training":
            raise NotFound(f"No training with task id '{task_id}'", {"task_id": task_id})
        return task

    def status(self, task_id: str, owner_id: str | None, see_all: bool) -> dict[str, Any]:
        task = self._training_task(task_id, owner_id, see_all)
        return training_status(task, self.tasks.records.database)

    def stop(self, task_id: str, owner_id: str | None, see_all: bool) -> dict[str, Any]:
        self._training_task(task_id, owner_id, see_all)
        task = self.tasks.cancel(task_id, owner_id, see_all)
        stopping = task.status == "running"
        return {"task_id": task.id, "status": "stopping" if stopping else task.status,
                "message": "The Dagster run is being terminated; its last checkpoint is kept" if stopping else
                           f"Training is {task.status}"}

    # --- LLM fine-tuning ---

    def start_lora(self, owner_id: str | None, body: dict[str, Any], quantization: str) -> dict[str, Any]:
        return self.start(owner_id, {**body, "model_type": "causal_lm", "quantization": quantization})

    def _adapter(self, task_id: str, owner_id: str | None, see_all: bool):
        from kiln.store import ModelStore
        from kiln.training.llm import finished_adapter

        task = self.tasks.get(task_id, owner_id, see_all)
        return finished_adapter(task, ModelStore(self.settings.model_store_dir))

    def test(self, task_id: str, owner_id: str | None, see_all: bool, prompt: str, max_tokens: int,
             temperature: float, seed: int) -> dict[str, Any]:
        from kiln.training.llm import test_adapter

        model = self._adapter(task_id, owner_id, see_all)
        return {"response": test_adapter(model, prompt, max_tokens, temperature, seed), "task_id": task_id,
                "model_name": model.name}

    def merge(self, task_id: str, owner_id: str | None, see_all: bool, output_path: str) -> dict[str, Any]:
        """An ``llm_merge`` task (writing a full model takes a while); 404/409 at once for an unusable adapter."""
        model = self._adapter(task_id, owner_id, see_all)
        name = store_name(output_path, field="output_path")
        task = self.tasks.create(owner_id, f"Merge {model.name} into {name}", "llm_merge",
                                 {"task_id": task_id, "output_path": output_path})
        return {"task_id": task.id, "source_task_id": task_id, "status": task.status, "model_name": name,
                "message": f"merging the adapter of {model.name} into its base as {name!r}",
                "status_url": f"/tasks/{task.id}"}
