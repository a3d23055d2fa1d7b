"""``WS /ws/events?token=``: seed 002's real-time events. ``task_status`` on every transition and
progress step (the caller's own tasks; an admin's, everyone's), ``system_metrics`` every few seconds,
``scaling_event`` on every change of a model's instance pool. Task and scaling events come from the
event log (kiln/tasks/events.py), whichever process or machine wrote them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from bentos.api.http.identity import owner_of, sees_all
from bentos.api.http.websocket import Refused, refuse, websocket_principal
from kiln.tasks.events import EventTail
from kiln.tasks.hub import EventHub

router = APIRouter(tags=["events"])
METRICS_SECONDS = 5.0


class EventStream:
    """The hub of one server process, fed by the event log's tail and by its own metrics."""

    def __init__(self, database: Any, settings: Any, traffic: Any, metrics_seconds: float = METRICS_SECONDS):
        self.hub = EventHub()
        self.settings = settings
        self.traffic = traffic
        self.metrics_seconds = metrics_seconds
        self.tail = EventTail(database, self._deliver)
        self._metrics: asyncio.Task | None = None

    def _deliver(self, event: Any) -> None:
        self.hub.publish_threadsafe({"type": event.type, "data": event.data, "owner_id": event.owner_id})

    async def _system_metrics(self) -> None:
        from bentos.api.tasks.metrics import system_figures

        while self.hub.subscribers:
            figures = await run_in_threadpool(system_figures, self.settings, self.traffic)
            self.hub.publish({"type": "system_metrics", "data": {k: figures[k] for k in (
                "cpu_usage", "memory_usage", "disk_usage", "active_connections", "request_rate", "error_rate", "timestamp")},
                "owner_id": None})
            await asyncio.sleep(self.metrics_seconds)

    def join(self, owner_id: str | None, see_all: bool) -> Any:
        def accepts(message: dict) -> bool:
            return message["type"] != "task_status" or see_all or message.get("owner_id") == owner_id

        subscriber = self.hub.subscribe(accepts)
        self.tail.listen()
        if self._metrics is None or self._metrics.done():
            self._metrics = asyncio.ensure_future(self._system_metrics())
        return subscriber

    def leave(self, subscriber: Any) -> None:
        self.hub.unsubscribe(subscriber)
        self.tail.unlisten()


async def stream(websocket: WebSocket, events: EventStream, subscriber: Any,
                 translate: Callable[[dict], list[dict]] | None = None) -> None:
    """Send what reaches ``subscriber`` until the client goes; a client that sends nothing is fine.
    ``translate`` turns one event into the messages another socket's clients expect (e.g. /ws/training)."""

    async def receive_until_closed() -> None:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return

    closed = asyncio.ensure_future(receive_until_closed())
    try:
        while not closed.done():
            getter = asyncio.ensure_future(subscriber.queue.get())
            done, _ = await asyncio.wait({getter, closed}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                break
            message = getter.result()
            for outgoing in translate(message) if translate else [message]:
                await websocket.send_json({"type": outgoing["type"], "data": outgoing["data"]})
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        closed.cancel()
        with contextlib.suppress(Exception):
            await closed


@router.websocket("/ws/events")
async def events_socket(websocket: WebSocket) -> None:
    try:
        principal = await websocket_principal(websocket)
    except Refused as refused:
        await refuse(websocket, refused)
        return
    backends = getattr(websocket.app.state, "backends", None)
    events: EventStream | None = getattr(backends, "events", None)
    if events is None:
        await websocket.close(code=1013, reason="the server is still starting")
        return
    await websocket.accept()
    subscriber = events.join(owner_of(principal), sees_all(principal, websocket.app.state.access.settings.enable_auth))
    try:
        await websocket.send_json({"type": "connected", "data": {"streams": ["task_status", "system_metrics", "scaling_event"]}})
        await stream(websocket, events, subscriber)
    finally:
        events.leave(subscriber)
