"""Kiln's records database: migrations from several threads of one process at once (the API's Database and the
traffic sampler's, or two gateways in one test process) each bring their own file to the newest revision."""

import threading

from sqlalchemy import inspect

from kiln.db import VERSION_TABLE, Database


def test_concurrent_migrations_in_one_process_do_not_cross(tmp_path):
    databases = [Database(f"sqlite:///{tmp_path / f'records-{i}.db'}") for i in range(6)]
    errors: list[str] = []

    def migrate(database: Database) -> None:
        try:
            database.migrate()
        except Exception as exc:  # alembic's process-wide proxies swapped under another thread's upgrade
            errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=migrate, args=(database,)) for database in databases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors[:3]
    for database in databases:
        tables = set(inspect(database.engine).get_table_names())
        assert {"users", "tasks", "faces", VERSION_TABLE} <= tables, tables
        database.dispose()
