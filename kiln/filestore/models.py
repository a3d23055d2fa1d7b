"""The files table: what was uploaded (or a task wrote), by whom, and where its bytes are."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from kiln.db import Base
from kiln.tasks.models import new_id, utcnow


class StoredFile(Base):
    __tablename__ = "files"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    filename: Mapped[str] = mapped_column(String(255))  # the sanitized name, for Content-Disposition
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="uploaded")  # uploaded | processed | output
    owner_id: Mapped[str | None] = mapped_column(String(80), index=True)
    task_id: Mapped[str | None] = mapped_column(String(36), index=True)  # the task that wrote it, for outputs
    storage_key: Mapped[str] = mapped_column(String(200))  # where the backend keeps the bytes
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
