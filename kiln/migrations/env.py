"""Alembic environment: runs on the connection ``Database.migrate`` hands over (or KILN_DATABASE_URL)."""

from __future__ import annotations

from alembic import context

import kiln.access.models  # noqa: F401  (registers the tables on Base.metadata)
import kiln.filestore.models  # noqa: F401
import kiln.scaling.models  # noqa: F401
import kiln.serving.download_records  # noqa: F401
import kiln.tasks.models  # noqa: F401
import kiln.vision.records  # noqa: F401
from kiln.db import VERSION_TABLE, Base, make_engine
from kiln.settings import get_settings


def run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    run(connection)
else:  # the plain `alembic` command line
    with make_engine(get_settings().records_database_url).connect() as own:
        run(own)
        own.commit()
