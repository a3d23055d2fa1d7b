"""Download records in Kiln's records database, so a download's id keeps answering after a restart and
from every gateway worker process, not only the one that started it.

A background download runs in the process that started it; that process writes each state change.
A record left unfinished by a process that is gone (the server stopped mid-download) is marked
``failed`` with a message saying so the first time anyone reads it.
"""

from __future__ import annotations

import json
import os
import socket
from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, Boolean, Float, Integer, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from kiln.db import Base, Database

if TYPE_CHECKING:
    from kiln.serving.downloads import Download

HOST = socket.gethostname()


class DownloadRecord(Base):
    __tablename__ = "downloads"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    model_name: Mapped[str] = mapped_column(String(200), index=True)
    source: Mapped[str] = mapped_column(String(32))
    model_id: Mapped[str] = mapped_column(Text)
    task: Mapped[str] = mapped_column(String(64))
    via: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), index=True)
    message: Mapped[str] = mapped_column(Text)
    created: Mapped[float] = mapped_column(Float, index=True)
    started: Mapped[float | None] = mapped_column(Float)
    finished: Mapped[float | None] = mapped_column(Float)
    expected_bytes: Mapped[int | None] = mapped_column(BigInteger)
    downloaded_bytes: Mapped[int] = mapped_column(BigInteger)
    path: Mapped[str | None] = mapped_column(Text)
    version: Mapped[str | None] = mapped_column(String(64))
    reused: Mapped[bool | None] = mapped_column(Boolean)
    dagster_run_id: Mapped[str | None] = mapped_column(String(64))
    dagster_run_url: Mapped[str | None] = mapped_column(Text)
    options: Mapped[str] = mapped_column(Text)  # JSON
    owner_host: Mapped[str] = mapped_column(String(255))
    owner_pid: Mapped[int] = mapped_column(Integer)


FIELDS = (
    "id", "model_name", "source", "model_id", "task", "via", "state", "message", "created", "started", "finished",
    "expected_bytes", "downloaded_bytes", "path", "version", "reused", "dagster_run_id", "dagster_run_url",
)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class DownloadRecords:
    """Save and load ``Download``s; ``database.migrate()`` must have run (the gateway does it at start)."""

    def __init__(self, database: Database):
        self.database = database

    def save(self, download: Download) -> None:
        values = {name: getattr(download, name) for name in FIELDS}
        values["options"] = json.dumps(download.options, default=str)
        with self.database.session() as session:
            record = session.get(DownloadRecord, download.id)
            if record is None:
                session.add(DownloadRecord(**values, owner_host=HOST, owner_pid=os.getpid()))
            else:
                for name, value in values.items():
                    setattr(record, name, value)

    def load(self, download_id: str) -> Download | None:
        with self.database.session() as session:
            record = session.get(DownloadRecord, download_id)
            found = None if record is None else self._read(record)
        return None if found is None else self._settle(*found)

    def recent(self, limit: int = 100) -> list[Download]:
        with self.database.session() as session:
            records = session.scalars(select(DownloadRecord).order_by(DownloadRecord.created.desc()).limit(limit)).all()
            found = [self._read(record) for record in records]
        return [self._settle(*pair) for pair in found]

    def unfinished(self, model_name: str) -> Download | None:
        """A download of ``model_name`` still running somewhere (not orphaned)."""
        from kiln.serving.downloads import DONE

        with self.database.session() as session:
            records = session.scalars(
                select(DownloadRecord).where(DownloadRecord.model_name == model_name, DownloadRecord.state.not_in(DONE))
            ).all()
            found = [self._read(record) for record in records]
        return next((d for d in (self._settle(*pair) for pair in found) if d.state not in DONE), None)

    @staticmethod
    def _read(record: DownloadRecord) -> tuple[Download, str, int]:
        from kiln.serving.downloads import Download

        options = json.loads(record.options or "{}")
        return Download(**{name: getattr(record, name) for name in FIELDS}, options=options), record.owner_host, record.owner_pid

    def _settle(self, download: Download, host: str, pid: int) -> Download:
        """Mark a background download whose process on this host is gone as failed (once, stored)."""
        from kiln.serving.downloads import DONE

        gone = download.via == "background" and host == HOST and pid != os.getpid() and not process_alive(pid)
        if download.state not in DONE and gone:
            download.state, download.finished = "failed", download.started or download.created
            download.message = (
                "Interrupted: the server stopped before this download finished. "
                f"Start it again with POST /models/download (model_name={download.model_name})."
            )
            self.save(download)
        return download
