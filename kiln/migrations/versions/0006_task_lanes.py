"""Task lanes (kiln/tasks/queue.py): the queue a task's messages go to, chosen by its task type at creation.

Revision ID: 0006_task_lanes
Revises: 0005_faces
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_task_lanes"
down_revision = "0005_faces"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("lane", sa.String(16), nullable=False, server_default="default"))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("lane")
