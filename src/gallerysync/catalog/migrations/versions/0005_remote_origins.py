"""origins: phase-2 state of remote sources (remote_version, fetch_status, fetch_error, etag)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("origins", schema=None) as batch_op:
        batch_op.add_column(sa.Column("remote_version", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("fetch_status", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("fetch_error", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("etag", sa.String(length=200), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_origins_source_id_fetch_status"),
            ["source_id", "fetch_status"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("origins", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_origins_source_id_fetch_status"))
        for column in ("etag", "fetch_error", "fetch_status", "remote_version"):
            batch_op.drop_column(column)
