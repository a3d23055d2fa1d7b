"""Per-model traffic samples (the scaling predictor's history).

Revision ID: 0004_traffic_samples
Revises: 0003_tasks_files_events
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_traffic_samples"
down_revision = "0003_tasks_files_events"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "traffic_samples",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(63), nullable=False, index=True),
        sa.Column("sampled_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("seconds", sa.Float, nullable=False),
        sa.Column("requests", sa.Integer, nullable=False),
        sa.Column("errors", sa.Integer, nullable=False),
        sa.Column("p95_ms", sa.Float, nullable=False),
        sa.Column("instances", sa.Integer, nullable=False),
        sa.Column("busy_share", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("traffic_samples")
