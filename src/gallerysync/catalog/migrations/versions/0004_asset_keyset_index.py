"""assets (owner_id, created_at, id): the gallery's keyset order as one index range, no sort

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 11:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("assets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_assets_owner_id_created_at"))
        batch_op.create_index(
            batch_op.f("ix_assets_owner_id_created_at_id"),
            ["owner_id", "created_at", "id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("assets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_assets_owner_id_created_at_id"))
        batch_op.create_index(
            batch_op.f("ix_assets_owner_id_created_at"), ["owner_id", "created_at"], unique=False
        )
