"""Seed 001's Training and LLM fine-tuning APIs under /api: start, status and stop a training; LoRA/QLoRA, test, merge; the training websocket (/ws/training, /api/ws/training). Each training is a task of the one
task system (kiln/tasks/types/training.py) that launches and follows a Dagster run; the logic is kiln/training/."""

from bentos.api.http import formats
from bentos.api.http.surface import Surface
from bentos.api.training import llm, routes, socket
from bentos.api.training.permissions import RULES

SURFACE = Surface(
    name="training",
    routers=(routes.router, llm.router, socket.router),
    error_formats={"/api": formats.multimedia},  # seed 001's {"detail"}
    rules=RULES,
)
