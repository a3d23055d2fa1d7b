"""Alembic migrations of Kiln's records database (applied by ``kiln.db.Database.migrate``)."""
