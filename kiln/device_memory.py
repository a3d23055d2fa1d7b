"""Memory on devices, measured: what the process holds there (RSS on the CPU, torch's CUDA allocator on a
GPU), handing freed memory back (gc, ``malloc_trim``, ``torch.cuda.empty_cache``), and the buffers seed 004
reserves (``allocations/allocate``): real tensors on the device, counted, moved by ``transfer``."""

from __future__ import annotations

import gc
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from kiln.devices import MIB
from kiln.errors import BadRequest, NotFound

MEMORY_TYPES = ("tensor_buffer", "pinned", "workspace")


def measure(torch_device: str) -> int:
    """Bytes this process holds on ``torch_device``: RSS for the CPU, allocated CUDA memory for a GPU."""
    if torch_device.startswith("cuda"):
        import torch

        return int(torch.cuda.memory_allocated(torch.device(torch_device)))
    import psutil

    return int(psutil.Process().memory_info().rss)


def settle(torch_device: str | None = None) -> dict[str, Any]:
    """Give back what is free: gc, malloc_trim on Linux, the CUDA cache. Says what it did."""
    from kiln.serving.memory import trim_process_memory

    collected = gc.collect()
    done = {"gcObjects": collected, "mallocTrim": trim_process_memory(), "cudaEmptyCache": False}
    if torch_device is None or torch_device.startswith("cuda"):
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
                done["cudaEmptyCache"] = True
        except ImportError:
            pass
    return done


class AllocationNotFound(NotFound):
    code = "ALLOCATION_NOT_FOUND"


@dataclass
class Allocation:
    id: str
    device_id: str
    torch_device: str
    size_bytes: int
    type: str
    persistent: bool
    created_at: float
    owner: str | None
    tensor: Any = field(repr=False)
    transfers: int = 0

    def describe(self) -> dict[str, Any]:
        return {"allocationId": self.id, "deviceId": self.device_id, "size": round(self.size_bytes / MIB, 3),
                "sizeBytes": self.size_bytes, "type": self.type, "persistent": self.persistent,
                "createdAt": self.created_at, "transfers": self.transfers}


class Allocations:
    """The buffers reserved through the API, by id. A non-persistent one goes at the next defragment."""

    def __init__(self) -> None:
        self._items: dict[str, Allocation] = {}
        self._lock = threading.Lock()

    def allocate(self, device_id: str, torch_device: str, size_bytes: int, kind: str, persistent: bool,
                 owner: str | None) -> Allocation:
        import torch

        if kind not in MEMORY_TYPES:
            raise BadRequest(f"type must be one of {', '.join(MEMORY_TYPES)}, got {kind!r}", {"field": "type"})
        pin = kind == "pinned" and torch_device == "cpu" and torch.cuda.is_available()
        tensor = torch.empty(size_bytes, dtype=torch.uint8, device=torch_device, pin_memory=pin)
        tensor.fill_(0)  # touch every page: the memory is really taken, not just promised
        allocation = Allocation(f"alloc-{uuid.uuid4()}", device_id, torch_device, size_bytes, kind, persistent,
                                time.time(), owner, tensor)
        with self._lock:
            self._items[allocation.id] = allocation
        return allocation

    def get(self, allocation_id: str) -> Allocation:
        with self._lock:
            if allocation_id not in self._items:
                raise AllocationNotFound(f"No allocation '{allocation_id}'",
                                         {"allocationId": allocation_id, "allocations": sorted(self._items)})
            return self._items[allocation_id]

    def release(self, allocation_id: str) -> Allocation:
        with self._lock:
            allocation = self._items.pop(allocation_id, None)
        if allocation is None:
            raise AllocationNotFound(f"No allocation '{allocation_id}'", {"allocationId": allocation_id})
        allocation.tensor = None
        return allocation

    def release_transient(self, device_ids: set[str]) -> list[Allocation]:
        with self._lock:
            gone = [a for a in self._items.values() if not a.persistent and a.device_id in device_ids]
            for allocation in gone:
                del self._items[allocation.id]
        for allocation in gone:
            allocation.tensor = None
        return gone

    def on(self, device_id: str) -> list[Allocation]:
        with self._lock:
            return [a for a in self._items.values() if a.device_id == device_id]

    def transfer(self, allocation: Allocation, device_id: str, torch_device: str) -> dict[str, Any]:
        """Move the buffer's bytes to ``torch_device`` (a copy into a new buffer on the same device) and free
        the old one; measured. The copy is checked to hold the same bytes."""
        import torch

        source_device = allocation.torch_device
        before_target = measure(torch_device)
        started = time.perf_counter()
        moved = allocation.tensor.to(torch_device, copy=True)
        if torch_device.startswith("cuda") or source_device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        same = bool(torch.equal(moved[:1024].cpu(), allocation.tensor[:1024].cpu()))
        old, allocation.tensor = allocation.tensor, moved
        del old
        allocation.device_id, allocation.torch_device = device_id, torch_device
        allocation.transfers += 1
        settle(source_device)
        return {"allocationId": allocation.id, "bytes": allocation.size_bytes, "seconds": round(seconds, 6),
                "bandwidthMBps": round(allocation.size_bytes / MIB / seconds, 1) if seconds > 0 else None,
                "sameDevice": source_device == torch_device, "verified": same,
                "targetMemoryDeltaBytes": measure(torch_device) - before_target}
