"""The camera stream's rule: the newest frame wins. Frames land in a one-place slot; a frame that arrives
while an older one still waits replaces it (the older is counted as skipped), so under load the answer
always concerns the newest frame and nothing queues up. A rate bound spaces out the frames processed."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

OPERATIONS = ("detect", "faces", "recognize")


@dataclass
class Frame:
    frame_id: Any
    image: bytes
    operations: tuple[str, ...]
    received: float = field(default_factory=time.perf_counter)


class LatestFrame:
    def __init__(self, max_fps: float):
        self.interval = 1.0 / max_fps
        self._frame: Frame | None = None
        self._ready = asyncio.Event()
        self._last_taken = float("-inf")
        self.received = 0
        self.skipped = 0
        self.closed = False

    def put(self, frame: Frame) -> bool:
        """Offer a frame; True when it replaced one that was still waiting (that one is skipped)."""
        self.received += 1
        replaced = self._frame is not None
        if replaced:
            self.skipped += 1
        self._frame = frame
        self._ready.set()
        return replaced

    def close(self) -> None:
        self.closed = True
        self._ready.set()

    async def take(self) -> Frame | None:
        """The newest frame, no sooner than the rate bound allows after the previous one; None once closed."""
        while True:
            await self._ready.wait()
            if self.closed:
                return None
            wait = self._last_taken + self.interval - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)  # frames arriving meanwhile replace this one
                continue
            frame, self._frame = self._frame, None
            self._ready.clear()
            if frame is not None:
                self._last_taken = time.perf_counter()
                return frame


def parse_operations(value: Any, field: str = "operations") -> tuple[str, ...]:
    from kiln.errors import InvalidInput

    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise InvalidInput(field, f"a non-empty list of operations among {list(OPERATIONS)}")
    unknown = [v for v in value if v not in OPERATIONS]
    if unknown:
        raise InvalidInput(field, f"unknown operations {unknown}; known: {list(OPERATIONS)}")
    return tuple(dict.fromkeys(value))
