"""Registered faces (kiln/vision/records.py): name, owner, 128-d descriptor, box, and the image's file record.

Revision ID: 0005_faces
Revises: 0004_traffic_samples
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_faces"
down_revision = "0004_traffic_samples"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "faces",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("owner_id", sa.String(80), nullable=True, index=True),
        sa.Column("descriptor", sa.LargeBinary, nullable=False),
        sa.Column("bbox", sa.JSON, nullable=False),
        sa.Column("image_file_id", sa.String(36), nullable=True),
        sa.Column("model", sa.String(63), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    )


def downgrade() -> None:
    op.drop_table("faces")
