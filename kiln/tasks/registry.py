"""The one registry of task types: a name, a parameter schema checked when a task is created (422
naming the field), the function that does the work, and an optional check that needs the caller (for
example, that an input file belongs to them). Every surface's long work registers here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from kiln.errors import InvalidInput

if TYPE_CHECKING:
    from kiln.tasks.context import TaskContext


@dataclass(frozen=True)
class TaskType:
    name: str
    description: str
    parameters: type[BaseModel]
    run: Callable[[Any, TaskContext], dict[str, Any]]
    # (parameters, inputs) -> None; raises a KilnError (404/422) for inputs the caller cannot use
    check: Callable[[Any, Inputs], None] | None = None
    # the queue lane (kiln.tasks.queue.LANES) of a task, or (parameters, inputs) -> lane; fixed at creation
    lane: str | Callable[[Any, Inputs], str] = "default"

    def lane_for(self, parameters: Any, inputs: Inputs) -> str:
        return self.lane(parameters, inputs) if callable(self.lane) else self.lane


@dataclass(frozen=True)
class Inputs:
    """What a task may read: the files of its owner (every file when auth is off, or the task has no owner)."""

    files: Any  # kiln.filestore.store.FileStore
    owner_id: str | None
    see_all: bool

    def file(self, reference: str, field: str = "input_file") -> Any:
        """A file named in the parameters (an id, or the name of one of the owner's files); 422 naming ``field``."""
        return self.files.find(reference, self.owner_id, self.see_all, field=field)


class TaskRegistry:
    def __init__(self) -> None:
        self._types: dict[str, TaskType] = {}

    def register(self, task_type: TaskType) -> TaskType:
        if task_type.name in self._types:
            raise ValueError(f"task type {task_type.name!r} is registered twice")
        self._types[task_type.name] = task_type
        return task_type

    def names(self) -> list[str]:
        return sorted(self._types)

    def get(self, name: str) -> TaskType:
        if name not in self._types:
            raise InvalidInput("task_type", f"unknown task type {name!r}; known: {', '.join(self.names())}")
        return self._types[name]

    def describe(self) -> list[dict[str, Any]]:
        return [{"name": t.name, "description": t.description, "parameters": t.parameters.model_json_schema()}
                for _, t in sorted(self._types.items())]

    def parse(self, name: str, parameters: dict[str, Any] | None) -> BaseModel:
        """The validated parameters of a ``name`` task, or InvalidInput naming ``parameters.<field>``."""
        task_type = self.get(name)
        try:
            return task_type.parameters.model_validate(parameters or {})
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(["parameters", *(str(p) for p in first["loc"])])
            raise InvalidInput(field, first["msg"]) from None


def default_registry() -> TaskRegistry:
    """The built-in task types (kiln/tasks/types/) and every surface's."""
    from kiln.tasks.types import register_all

    registry = TaskRegistry()
    register_all(registry)
    return registry
