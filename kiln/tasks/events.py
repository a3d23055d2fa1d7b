"""The event log: every task transition and progress step, and every scaling change, as a row in Kiln's
database. Whoever makes the event writes it (a task worker on any machine, the model worker's
autoscaler); every server process tails the log and hands new events to its websocket clients. One log
for all processes, so no event depends on which process a client is connected to.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import delete, func, select

from kiln.db import Database
from kiln.tasks.models import Event, utcnow

log = logging.getLogger("kiln.events")


def stamp(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:  # sqlite hands naive datetimes back; they were stored as UTC
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.isoformat().replace("+00:00", "Z")


def publish(database: Database, type: str, data: dict[str, Any], task_id: str | None = None,
            owner_id: str | None = None) -> None:
    """Store one event; a failure to record it is logged, never raised into the work that made it."""
    try:
        with database.session() as session:
            session.add(Event(type=type, task_id=task_id, owner_id=owner_id, data=data))
    except Exception:
        log.exception("could not record a %s event", type)


def latest_id(database: Database) -> int:
    with database.session() as session:
        return session.scalar(select(func.max(Event.id))) or 0


def read_after(database: Database, after: int, limit: int = 500) -> list[Event]:
    with database.session() as session:
        return list(session.scalars(select(Event).where(Event.id > after).order_by(Event.id).limit(limit)))


def prune(database: Database, retention_hours: float) -> int:
    cutoff = utcnow() - timedelta(hours=retention_hours)
    with database.session() as session:
        return session.execute(delete(Event).where(Event.created_at < cutoff)).rowcount


class EventTail:
    """A thread that reads new events every ``interval`` seconds and hands each to ``deliver``, only
    while someone listens (``listeners > 0``). It starts at the newest event: clients get what happens
    after they connect."""

    def __init__(self, database: Database, deliver: Callable[[Event], None], interval: float = 0.25):
        self.database = database
        self.deliver = deliver
        self.interval = interval
        self.listeners = 0
        self.last_id: int | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def listen(self) -> None:
        with self._lock:
            self.listeners += 1
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, name="kiln-event-tail", daemon=True)
                self._thread.start()

    def unlisten(self) -> None:
        with self._lock:
            self.listeners = max(0, self.listeners - 1)

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                if self.last_id is None:
                    self.last_id = latest_id(self.database)
                if self.listeners:
                    for event in read_after(self.database, self.last_id):
                        self.last_id = event.id
                        self.deliver(event)
                else:
                    self.last_id = latest_id(self.database)
            except Exception:  # the database is away for a moment: try again next round
                log.exception("reading the event log failed")
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))
