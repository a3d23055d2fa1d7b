"""Gateway-side request coalescing: concurrent /predict calls for the same model share worker calls.

Each gateway->worker call costs a full HTTP round trip on both sides, which on a small CPU costs as
much as the forward pass of a short sentence. While ``max_in_flight`` calls for a key are running,
new requests wait in a queue; when a call returns, everything queued goes out as one call (at most
``max_items`` items). With no load nothing waits; under load the queue fills while the worker is busy,
so the worker sees fewer, larger calls (which its adaptive batching merges further).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

Send = Callable[[list[dict[str, Any]]], Awaitable[list[dict[str, Any]]]]


class Coalescer:
    def __init__(self, send: Send, max_in_flight: int = 2, max_items: int = 64):
        self.send = send
        self.max_in_flight = max_in_flight
        self.max_items = max_items
        self.in_flight = 0
        self.queue: list[tuple[list[dict[str, Any]], asyncio.Future]] = []
        self.calls = 0
        self.requests = 0

    async def submit(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        future = asyncio.get_running_loop().create_future()
        self.queue.append((requests, future))
        self.requests += 1
        self._pump()
        return await future

    def _pump(self) -> None:
        while self.queue and self.in_flight < self.max_in_flight:
            batch, size = [], 0
            while self.queue and (not batch or size + len(self.queue[0][0]) <= self.max_items):
                requests, future = self.queue.pop(0)
                if future.cancelled():  # the caller timed out while queued
                    continue
                batch.append((requests, future))
                size += len(requests)
            if not batch:
                return
            self.in_flight += 1
            self.calls += 1
            asyncio.ensure_future(self._call(batch))

    async def _call(self, batch: list[tuple[list[dict[str, Any]], asyncio.Future]]) -> None:
        try:
            merged = [request for requests, _ in batch for request in requests]
            try:
                results = await self.send(merged)
            except BaseException as exc:  # every caller of this call gets the error
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                return
            start = 0
            for requests, future in batch:
                if not future.done():
                    future.set_result(results[start : start + len(requests)])
                start += len(requests)
        finally:
            self.in_flight -= 1
            self._pump()
