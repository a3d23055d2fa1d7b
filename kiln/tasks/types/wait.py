"""``wait``: sleeps for a given time, reporting progress; for checking a deployment's workers and for the
task-system benchmark (no-op and 100 ms tasks). It does nothing else, and says so in its result."""

from __future__ import annotations

import time

from pydantic import BaseModel, Field

from kiln.tasks.context import TaskContext
from kiln.tasks.registry import TaskType


class WaitParameters(BaseModel):
    seconds: float = Field(0.0, ge=0, le=3600, description="How long to wait (0: return at once)")
    steps: int = Field(1, ge=1, le=1000, description="Progress points along the way (each is a cancel point)")


def wait(parameters: WaitParameters, context: TaskContext) -> dict:
    started = time.perf_counter()
    if parameters.seconds > 0:
        for step in range(parameters.steps):
            context.wait(parameters.seconds / parameters.steps)
            context.progress(100 * (step + 1) / parameters.steps, f"step {step + 1}/{parameters.steps}")
    return {"waited_seconds": round(time.perf_counter() - started, 4), "steps": parameters.steps}


TYPES = [TaskType("wait", "Wait for `seconds` in `steps` progress steps (checks workers; no other work)", WaitParameters, wait)]
