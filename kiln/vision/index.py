"""The registered faces' descriptors as one in-memory numpy matrix: a nearest-neighbour query over 10k
faces is one matrix-vector product (well under a millisecond), where a table scan per query would not scale.

Thread-safe; rows carry their owner so a query can be limited to one owner's faces.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

DIMENSIONS = 128
_blas: Any = None


def _one_blas_thread() -> Any:
    global _blas
    if _blas is None:
        from threadpoolctl import ThreadpoolController

        _blas = ThreadpoolController()
    return _blas.limit(limits=1, user_api="blas")


@dataclass(frozen=True)
class Match:
    face_id: str
    distance: float


class FaceIndex:
    def __init__(self, dimensions: int = DIMENSIONS):
        self.dimensions = dimensions
        self._lock = threading.Lock()
        self._buffer = np.zeros((0, dimensions), dtype=np.float32)  # rows beyond len(self._ids) are spare room
        self._ids: list[str] = []
        self._owners: list[str | None] = []
        self._version = 0
        self._cached_version = -1
        self._cached: tuple = (self._buffer, np.zeros(0, np.float32), [], np.zeros(0, dtype=object))

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, face_id: str) -> bool:
        with self._lock:
            return face_id in self._ids

    def replace(self, rows: list[tuple[str, str | None, np.ndarray]]) -> None:
        """Every row at once (face_id, owner_id, descriptor): a reload from the table."""
        matrix = np.stack([self._vector(d) for _, _, d in rows]) if rows else np.zeros((0, self.dimensions), np.float32)
        with self._lock:
            self._buffer = matrix
            self._ids = [face_id for face_id, _, _ in rows]
            self._owners = [owner for _, owner, _ in rows]
            self._version += 1

    def add(self, face_id: str, owner_id: str | None, descriptor: np.ndarray) -> None:
        vector = self._vector(descriptor)
        with self._lock:
            size = len(self._ids)
            if size == len(self._buffer):  # grow by doubling: registering n faces copies O(n) rows in all
                grown = np.zeros((max(64, 2 * size), self.dimensions), dtype=np.float32)
                grown[:size] = self._buffer[:size]
                self._buffer = grown
            self._buffer[size] = vector
            self._owners.append(owner_id)
            self._ids.append(face_id)
            self._version += 1

    def remove(self, face_id: str) -> bool:
        with self._lock:
            try:
                row = self._ids.index(face_id)
            except ValueError:
                return False
            size = len(self._ids)
            self._buffer[row:size - 1] = self._buffer[row + 1:size]
            del self._ids[row]
            del self._owners[row]
            self._version += 1
            return True

    def _snapshot(self) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
        """(matrix, squared norms, ids, owners) as of the last change: copied once per change, so queries
        never hold the lock while they compute."""
        with self._lock:
            if self._cached_version != self._version:
                size = len(self._ids)
                matrix = self._buffer[:size].copy()
                self._cached = (matrix, (matrix ** 2).sum(1), list(self._ids), np.array(self._owners, dtype=object))
                self._cached_version = self._version
            return self._cached

    def nearest(self, descriptors: np.ndarray, owner_id: str | None = None, see_all: bool = True) -> list[Match | None]:
        """For each query row, the closest face (Euclidean distance) among the caller's, or None when there is none."""
        queries = np.atleast_2d(np.asarray(descriptors, dtype=np.float32))
        matrix, norms, ids, owners = self._snapshot()
        if not ids:
            return [None] * len(queries)
        # |a - b|^2 = |a|^2 - 2ab + |b|^2, for all pairs at once; on one BLAS thread: a query is too small to
        # split, and threads that spin for a shared core made it 5x slower (benchmarks/vision_throughput.py)
        with _one_blas_thread():
            products = queries @ matrix.T
        squared = (queries ** 2).sum(1)[:, None] - 2 * products + norms[None, :]
        if not see_all:
            others = owners != owner_id
            if others.all():
                return [None] * len(queries)
            squared[:, others] = np.inf
        best = squared.argmin(1)
        return [Match(ids[j], float(np.sqrt(max(squared[i, j], 0.0)))) for i, j in enumerate(best)]

    def _vector(self, descriptor: np.ndarray) -> np.ndarray:
        vector = np.asarray(descriptor, dtype=np.float32).reshape(-1)
        if vector.shape[0] != self.dimensions:
            raise ValueError(f"a face descriptor has {self.dimensions} numbers, got {vector.shape[0]}")
        return vector
