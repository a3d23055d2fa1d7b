"""Fan-out of events to websocket clients in one server process. Each client has a bounded queue: when a
slow client's queue is full the oldest event is dropped (and counted), so no client can stall the
server or make it hold unbounded memory. Events arrive from the event log's tail thread, and from the
process itself (system metrics)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Message = dict[str, Any]  # {"type": ..., "data": {...}}


@dataclass(eq=False)
class Subscriber:
    accepts: Callable[[Message], bool]
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(maxsize=256))
    dropped: int = 0

    def offer(self, message: Message) -> None:
        if not self.accepts(message):
            return
        if self.queue.full():
            self.queue.get_nowait()  # the oldest goes first: the client sees the newest state
            self.dropped += 1
        self.queue.put_nowait(message)


class EventHub:
    def __init__(self, queue_size: int = 256):
        self.queue_size = queue_size
        self.subscribers: set[Subscriber] = set()
        self.loop: asyncio.AbstractEventLoop | None = None

    def subscribe(self, accepts: Callable[[Message], bool]) -> Subscriber:
        self.loop = asyncio.get_running_loop()
        subscriber = Subscriber(accepts, asyncio.Queue(maxsize=self.queue_size))
        self.subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)

    def publish(self, message: Message) -> None:
        """On the event loop's thread."""
        for subscriber in list(self.subscribers):
            subscriber.offer(message)

    def publish_threadsafe(self, message: Message) -> None:
        """From any thread (the event log's tail)."""
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.publish, message)
