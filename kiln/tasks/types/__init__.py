"""Kiln's task types. Each module defines its types; ``register_all`` puts them in a registry."""

from __future__ import annotations

from kiln.tasks.registry import TaskRegistry


def register_all(registry: TaskRegistry) -> None:
    from kiln.tasks.types import data, devices, generation, pipeline, speech, training, wait

    for module in (data, pipeline, speech, wait, generation, training, devices):
        for task_type in module.TYPES:
            registry.register(task_type)
