"""Model downloads started from the API (POST /models/download), so their ids outlive the process.

Revision ID: 0002_downloads
Revises: 0001_access_control
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_downloads"
down_revision = "0001_access_control"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "downloads",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("model_id", sa.Text, nullable=False),
        sa.Column("task", sa.String(64), nullable=False),
        sa.Column("via", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("started", sa.Float, nullable=True),
        sa.Column("finished", sa.Float, nullable=True),
        sa.Column("expected_bytes", sa.BigInteger, nullable=True),
        sa.Column("downloaded_bytes", sa.BigInteger, nullable=False),
        sa.Column("path", sa.Text, nullable=True),
        sa.Column("version", sa.String(64), nullable=True),
        sa.Column("reused", sa.Boolean, nullable=True),
        sa.Column("dagster_run_id", sa.String(64), nullable=True),
        sa.Column("dagster_run_url", sa.Text, nullable=True),
        sa.Column("options", sa.Text, nullable=False),
        sa.Column("owner_host", sa.String(255), nullable=False),
        sa.Column("owner_pid", sa.Integer, nullable=False),
    )
    op.create_index("ix_downloads_model_name", "downloads", ["model_name"])
    op.create_index("ix_downloads_state", "downloads", ["state"])
    op.create_index("ix_downloads_created", "downloads", ["created"])


def downgrade() -> None:
    op.drop_table("downloads")
