"""Migrations: the migrated database is exactly `schema.metadata`, and opening is idempotent."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select

from gallerysync.catalog import DEFAULT_OWNER, Catalog, schema
from gallerysync.catalog.engine import migrate, normalise_url
from gallerysync.errors import ConfigError
from tests.catalog.support import row_count

MIGRATIONS = Path(schema.__file__).parent / "migrations"


def _head_revision() -> str:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def test_migrated_schema_matches_metadata(catalog: Catalog) -> None:
    with catalog.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, schema.metadata)
    assert diff == []


def test_every_metadata_table_and_index_exists(catalog: Catalog) -> None:
    with catalog.engine.connect() as conn:
        inspector = inspect(conn)
        tables = set(inspector.get_table_names())
        assert set(schema.metadata.tables) | {"alembic_version"} == tables
        for table in schema.metadata.sorted_tables:
            wanted = {ix.name for ix in table.indexes}
            found = {ix["name"] for ix in inspector.get_indexes(table.name)}
            assert wanted <= found, table.name


def test_alembic_version_is_head(catalog: Catalog) -> None:
    with catalog.engine.connect() as conn:
        version = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all()
    assert version == [_head_revision()]


def test_feed_head_row_is_seeded(catalog: Catalog) -> None:
    with catalog.read() as conn:
        rows = conn.execute(select(schema.feed_head.c.id, schema.feed_head.c.seq)).all()
    assert len(rows) == 1
    assert rows[0].id == 1
    # Bootstrap logged the default owner, and nothing else.
    assert rows[0].seq == catalog.head() == 1
    assert [(c["seq"], c["entity_type"]) for c in catalog.changes_since(0)] == [(1, "user")]


def test_bootstrap_creates_owner_and_instance(catalog: Catalog) -> None:
    assert catalog.default_owner_id
    assert catalog.instance_id
    with catalog.read() as conn:
        users = conn.execute(select(schema.users.c.id, schema.users.c.name)).all()
        rows = conn.execute(select(schema.instance.c.key, schema.instance.c.value))
        instance = {key: value for key, value in rows}
    assert [(u.id, u.name) for u in users] == [(catalog.default_owner_id, DEFAULT_OWNER)]
    assert instance["instance_id"] == catalog.instance_id
    assert instance["epoch"]


def test_open_twice_is_idempotent(catalog: Catalog, catalog_url: str) -> None:
    head = catalog.head()
    instance_rows = row_count(catalog, schema.instance)
    again = Catalog.open(catalog_url)
    try:
        assert again.instance_id == catalog.instance_id
        assert again.default_owner_id == catalog.default_owner_id
        assert again.head() == head  # a reopen logs nothing
        assert row_count(again, schema.users) == 1
        assert row_count(again, schema.instance) == instance_rows
        assert row_count(again, schema.feed_head) == 1
        with again.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, schema.metadata) == []
    finally:
        again.close()


def test_reopen_after_close_keeps_identity(catalog_url: str) -> None:
    first = Catalog.open(catalog_url)
    ids = (first.instance_id, first.default_owner_id)
    first.close()
    second = Catalog.open(catalog_url)
    try:
        assert (second.instance_id, second.default_owner_id) == ids
        migrate(second.engine)  # running the migrations again is a no-op
        assert row_count(second, schema.feed_head) == 1
        assert second.head() == 1
    finally:
        second.close()


def test_sqlite_memory_database_is_refused() -> None:
    with pytest.raises(ConfigError):
        Catalog.open("sqlite://")
    with pytest.raises(ConfigError):
        Catalog.open("sqlite:///:memory:")


def test_unsupported_url_is_refused() -> None:
    with pytest.raises(ConfigError):
        Catalog.open("mysql://nobody@localhost/nothing")


def test_postgres_urls_use_psycopg3() -> None:
    assert normalise_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("sqlite:///x.db") == "sqlite:///x.db"
