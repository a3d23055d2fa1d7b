"""``WS /ws/training`` and ``/api/ws/training`` (seed 001): ``progress`` (task_id, progress, metrics: loss,
learning rate, step, validation metrics), ``status`` on every transition and ``error`` with the message, for
the caller's own trainings (an admin's: everyone's), or one of them with ``?task_id=``. They come from the
training tasks' events in the event log (what the task read from its Dagster run's MLflow logging), through
the same hub and bounded per-client queue as /ws/events."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, WebSocket

from bentos.api.http.identity import owner_of, sees_all
from bentos.api.http.websocket import Refused, refuse, websocket_principal
from bentos.api.tasks.events import EventStream, stream

router = APIRouter(tags=["training (seed 001)"])
PROGRESS_FIELDS = ("loss", "learning_rate", "current_step", "total_steps", "current_epoch", "total_epochs")


class TrainingMessages:
    """One client's view: task events become seed 001's progress/status/error messages."""

    def __init__(self) -> None:
        self.last_status: dict[str, str] = {}

    def __call__(self, message: dict) -> list[dict[str, Any]]:
        data = message["data"]
        task_id, status = data["task_id"], data["status"]
        out: list[dict[str, Any]] = []
        if self.last_status.get(task_id) != status:
            self.last_status[task_id] = status
            out.append({"type": "status", "data": {"task_id": task_id, "status": status, "message": data.get("message")}})
            if status == "failed":
                out.append({"type": "error", "data": {"task_id": task_id, "message": data.get("error") or "failed"}})
        reported = data.get("metrics") or {}
        if status == "running" and reported:
            metrics = {k: reported[k] for k in PROGRESS_FIELDS if reported.get(k) is not None}
            metrics.update(reported.get("metrics") or {})
            out.append({"type": "progress", "data": {"task_id": task_id, "progress": data.get("progress"),
                                                     "metrics": metrics, "dagster_run_id": reported.get("dagster_run_id"),
                                                     "mlflow_run_id": reported.get("mlflow_run_id")}})
        return out


def accepts_for(owner_id: str | None, see_all: bool, task_id: str | None):
    def accepts(message: dict) -> bool:
        data = message.get("data") or {}
        return (message["type"] == "task_status" and data.get("task_type") == "training"
                and (see_all or message.get("owner_id") == owner_id) and task_id in (None, data.get("task_id")))

    return accepts


async def training_socket(websocket: WebSocket) -> None:
    try:
        principal = await websocket_principal(websocket)
    except Refused as refused:
        await refuse(websocket, refused)
        return
    events: EventStream | None = getattr(getattr(websocket.app.state, "backends", None), "events", None)
    if events is None:
        await websocket.close(code=1013, reason="the server is still starting")
        return
    task_id = websocket.query_params.get("task_id") or None
    await websocket.accept()
    see_all = sees_all(principal, websocket.app.state.access.settings.enable_auth)
    subscriber = events.hub.subscribe(accepts_for(owner_of(principal), see_all, task_id))
    events.tail.listen()
    try:
        await websocket.send_json({"type": "connected", "data": {"task_id": task_id, "messages": ["progress", "status", "error"]}})
        await stream(websocket, events, subscriber, TrainingMessages())
    finally:
        events.leave(subscriber)


router.add_api_websocket_route("/ws/training", training_socket)
router.add_api_websocket_route("/api/ws/training", training_socket)
