"""Kiln's records database: SQLAlchemy 2 on sqlite under KILN_HOME by default, Postgres via KILN_DATABASE_URL.

The schema is owned by the Alembic migrations shipped in ``kiln/migrations`` and applied on start
(``Database.migrate``); tables are declared on ``Base`` so the migrations and the code share one truth.
"""

from __future__ import annotations

import contextlib
import fcntl
import threading
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

VERSION_TABLE = "kiln_alembic_version"  # not alembic_version: MLflow keeps its own in a shared Postgres
MIGRATION_LOCK_ID = 0x4B494C4E  # "KILN", for pg_advisory_lock
# Alembic runs a migration through process-wide proxies (alembic.op, alembic.context): two upgrades in two
# threads at once (two Database objects, e.g. the API's and the traffic sampler's) swap them under each other.
_ALEMBIC = threading.Lock()


class Base(DeclarativeBase):
    pass


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # several gateway processes share the file
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            # WAL with NORMAL: a commit survives the process crashing (not the machine losing power) and
            # costs no fsync; what counts for a task queue's records at tens of commits per second.
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


class Database:
    """One engine and session factory; ``migrate()`` brings the schema to the newest revision."""

    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._migrated = False
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        with self.sessions() as session, session.begin():
            yield session

    def migrate(self) -> None:
        with self._lock, _ALEMBIC:
            if self._migrated:
                return
            from alembic import command
            from alembic.config import Config

            config = Config()
            config.set_main_option("script_location", "kiln:migrations")
            with self._exclusive() as connection:
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
            self._migrated = True

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator:
        """A connection held under a cross-process lock, so gateway workers never migrate at once."""
        if self.engine.dialect.name == "postgresql":
            with self.engine.connect() as connection:
                connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
                connection.commit()
                try:
                    yield connection
                    connection.commit()
                finally:
                    connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID})
                    connection.commit()
            return
        database = self.engine.url.database
        lock_path = Path(f"{database}.migrate.lock") if database and database != ":memory:" else None
        with contextlib.ExitStack() as stack:
            if lock_path:
                handle = stack.enter_context(open(lock_path, "w"))
                fcntl.flock(handle, fcntl.LOCK_EX)
            with self.engine.connect() as connection:
                yield connection
                connection.commit()

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Hold the named lock across every process and machine that shares this database: a Postgres
        advisory lock, or a file lock beside a sqlite file. For read-compare-write steps such as the
        champion gate, which two pipeline runs finishing together must not both pass on stale reads."""
        if self.engine.dialect.name == "postgresql":
            with self.engine.connect() as connection:
                key = {"name": f"kiln:{name}"}
                connection.execute(text("SELECT pg_advisory_lock(hashtext(:name))"), key)
                connection.commit()
                try:
                    yield
                finally:
                    connection.execute(text("SELECT pg_advisory_unlock(hashtext(:name))"), key)
                    connection.commit()
            return
        database = self.engine.url.database
        folder = Path(database).parent if database and database != ":memory:" else Path(".")
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        with open(folder / f".lock-{safe}", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def dispose(self) -> None:
        self.engine.dispose()
