"""organising entities: entities (tags, people, studios, collections, groups), links between
a source's keys, the derived origin_entities, and origins.inherited

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "entities",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("owner_id", sa.String(length=36), nullable=False),
        sa.Column("source_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("remote_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("fields", sa.Text(), nullable=False),
        sa.Column("remote_version", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("asset_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("last_seen_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_entities_owner_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["sources.id"],
            name=op.f("fk_entities_source_id_sources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_entities")),
        sa.UniqueConstraint("source_id", "remote_id", name=op.f("uq_entities_source_id_remote_id")),
    )
    op.create_index(
        op.f("ix_entities_owner_id_kind_name"), "entities", ["owner_id", "kind", "name"]
    )
    op.create_table(
        "links",
        sa.Column("source_id", sa.String(length=36), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["sources.id"],
            name=op.f("fk_links_source_id_sources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("source_id", "subject", "target", name=op.f("pk_links")),
    )
    op.create_index(op.f("ix_links_source_id_target"), "links", ["source_id", "target"])
    op.create_table(
        "origin_entities",
        sa.Column("origin_id", sa.String(length=36), nullable=False),
        sa.Column("entity_id", sa.String(length=36), nullable=False),
        sa.Column("inherited", sa.Integer(), nullable=False),
        sa.Column("via", sa.String(length=36), nullable=True),
        sa.ForeignKeyConstraint(
            ["entity_id"],
            ["entities.id"],
            name=op.f("fk_origin_entities_entity_id_entities"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["origin_id"],
            ["origins.id"],
            name=op.f("fk_origin_entities_origin_id_origins"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("origin_id", "entity_id", name=op.f("pk_origin_entities")),
    )
    op.create_index(op.f("ix_origin_entities_entity_id"), "origin_entities", ["entity_id"])
    with op.batch_alter_table("origins", schema=None) as batch_op:
        batch_op.add_column(sa.Column("inherited", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("origins", schema=None) as batch_op:
        batch_op.drop_column("inherited")
    op.drop_index(op.f("ix_origin_entities_entity_id"), table_name="origin_entities")
    op.drop_table("origin_entities")
    op.drop_index(op.f("ix_links_source_id_target"), table_name="links")
    op.drop_table("links")
    op.drop_index(op.f("ix_entities_owner_id_kind_name"), table_name="entities")
    op.drop_table("entities")
