"""Registered faces: personal data. A row per face in Kiln's database (name, owner, 128-d descriptor, box),
its image in the files store, and the descriptors in an in-memory index (kiln.vision.index) kept in step
with the table: every change here updates both, and a change made by another process (another gateway
worker or replica) is picked up by comparing the table's (count, newest row) before each query.

Owners: with auth on a face belongs to the caller who registered it, and only they (or an admin) list,
recognize against or forget it. Nothing here logs names, descriptors or images.
"""

from __future__ import annotations

import secrets
import threading
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import JSON, DateTime, LargeBinary, String, func, select
from sqlalchemy.orm import Mapped, mapped_column

from kiln.db import Base, Database
from kiln.errors import NotFound
from kiln.tasks.events import stamp
from kiln.tasks.models import utcnow
from kiln.vision.index import FaceIndex, Match


def new_face_id() -> str:
    return f"face_{secrets.token_hex(8)}"


class FaceRecord(Base):
    __tablename__ = "faces"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=new_face_id)
    name: Mapped[str] = mapped_column(String(200))
    owner_id: Mapped[str | None] = mapped_column(String(80), index=True)
    descriptor: Mapped[bytes] = mapped_column(LargeBinary)  # 128 float32, little-endian
    bbox: Mapped[list] = mapped_column(JSON)  # [x, y, width, height] in the registered image
    image_file_id: Mapped[str | None] = mapped_column(String(36))  # the files store's record of the image
    model: Mapped[str] = mapped_column(String(63))  # the catalog model that computed the descriptor
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


def pack(descriptor: Any) -> bytes:
    return np.asarray(descriptor, dtype="<f4").reshape(-1).tobytes()


def unpack(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<f4")


class FaceRegistry:
    def __init__(self, database: Database, files: Any, threshold: float = 0.6):
        self.database = database
        self.files = files  # kiln.filestore.store.FileStore
        self.threshold = threshold
        self.index = FaceIndex()
        self._names: dict[str, str] = {}  # face_id -> name, beside the index: a query reads no extra row
        self._state: tuple[int, Any] | None = None  # the table's (count, newest created_at) the index reflects
        self._lock = threading.Lock()

    # --- keeping the index in step ---

    def _table_state(self) -> tuple[int, Any]:
        with self.database.session() as session:
            count, newest = session.execute(select(func.count(FaceRecord.id), func.max(FaceRecord.created_at))).one()
        return int(count), newest

    def sync(self) -> None:
        """Reload the index when the table changed behind it (another process registered or forgot a face)."""
        state = self._table_state()
        if state == self._state:
            return
        with self._lock:
            with self.database.session() as session:
                rows = session.execute(select(FaceRecord.id, FaceRecord.owner_id, FaceRecord.descriptor, FaceRecord.name)).all()
            self.index.replace([(face_id, owner, unpack(data)) for face_id, owner, data, _ in rows])
            self._names = {face_id: name for face_id, _, _, name in rows}
            self._state = state

    # --- changes ---

    def register(self, name: str, descriptor: Any, bbox: list[int], image: bytes, content_type: str, filename: str,
                 owner_id: str | None, model: str) -> FaceRecord:
        self.sync()  # catch up with other processes first, so the state recorded below is only ours on top
        stored = self.files.save_bytes(image, filename or "face", content_type, owner_id,
                                       description="registered face image", status="face")
        record = FaceRecord(id=new_face_id(), name=name, owner_id=owner_id, descriptor=pack(descriptor), bbox=list(bbox),
                            image_file_id=stored.id, model=model)
        try:
            with self.database.session() as session:
                session.add(record)
        except Exception:
            self.files.delete(stored.id)
            raise
        self._names[record.id] = record.name
        self.index.add(record.id, owner_id, unpack(record.descriptor))
        self._state = self._table_state()
        return record

    def forget(self, face_id: str, owner_id: str | None, see_all: bool) -> FaceRecord:
        """Delete the face's row, its image (record and bytes) and its index row; another owner's face is a 404."""
        with self.database.session() as session:
            record = session.get(FaceRecord, face_id)
            if record is None or (not see_all and record.owner_id != owner_id):
                raise NotFound(f"No registered face with id '{face_id}'", {"face_id": face_id})
            session.delete(record)
        if record.image_file_id:
            self.files.delete(record.image_file_id)
        self.index.remove(face_id)
        self._names.pop(face_id, None)
        self._state = self._table_state()
        return record

    # --- reading ---

    def list(self, owner_id: str | None, see_all: bool, limit: int = 100, offset: int = 0) -> tuple[list[FaceRecord], int]:
        with self.database.session() as session:
            query = select(FaceRecord)
            counted = select(func.count(FaceRecord.id))
            if not see_all:
                mine = FaceRecord.owner_id == owner_id if owner_id is not None else FaceRecord.owner_id.is_(None)
                query, counted = query.where(mine), counted.where(mine)
            total = int(session.scalar(counted) or 0)
            records = list(session.scalars(query.order_by(FaceRecord.created_at.desc()).offset(offset).limit(limit)))
        return records, total

    def recognize(self, descriptors: list[Any], owner_id: str | None, see_all: bool) -> list[dict[str, Any]]:
        """For each descriptor: the nearest registered face within the threshold (face_id, name, distance,
        confidence = 1 - distance / threshold, clipped at 0), or ``unknown``."""
        if not descriptors:
            return []
        self.sync()
        matches = self.index.nearest(np.asarray(descriptors, dtype=np.float32), owner_id, see_all)
        return [self._answer(match, self._names) for match in matches]

    def _answer(self, match: Match | None, names: dict[str, str]) -> dict[str, Any]:
        if match is None or match.distance > self.threshold or match.face_id not in names:
            return {"face_id": None, "name": "unknown", "confidence": 0.0,
                    "distance": None if match is None else round(match.distance, 4)}
        return {"face_id": match.face_id, "name": names[match.face_id], "distance": round(match.distance, 4),
                "confidence": round(max(0.0, 1.0 - match.distance / self.threshold), 4)}

    @staticmethod
    def describe(record: FaceRecord) -> dict[str, Any]:
        return {"face_id": record.id, "name": record.name, "bbox": record.bbox, "image_file_id": record.image_file_id,
                "model": record.model, "created_at": stamp(record.created_at)}
