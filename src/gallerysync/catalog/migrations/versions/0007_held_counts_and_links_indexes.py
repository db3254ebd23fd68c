"""origins: a partial index of the origins that are not present, for per-type held counts;
links: the (source_id, target) index made covering (subject), so SQLite uses it

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-21 20:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_links_source_id_target", table_name="links")
    op.create_index(
        "ix_links_source_id_target_subject", "links", ["source_id", "target", "subject"]
    )
    op.create_index(
        "ix_origins_absent",
        "origins",
        ["source_id", "remote_id"],
        unique=False,
        sqlite_where=sa.text("status <> 'present'"),
        postgresql_where=sa.text("status <> 'present'"),
    )


def downgrade() -> None:
    op.drop_index("ix_origins_absent", table_name="origins")
    op.drop_index("ix_links_source_id_target_subject", table_name="links")
    op.create_index("ix_links_source_id_target", "links", ["source_id", "target"])
