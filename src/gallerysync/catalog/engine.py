"""Database engines for the catalog: SQLite (WAL, one writer) and PostgreSQL, plus migrations.

SQLite notes: pysqlite's own transaction handling is switched off so that we emit `BEGIN` or
`BEGIN IMMEDIATE` ourselves. Writers use `BEGIN IMMEDIATE`, which takes the database write lock
at the start of the transaction: two processes never interleave a read-modify-write, and the
change-feed sequence allocated at the end of a transaction is in commit order (DESIGN §4).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.pool import QueuePool

from gallerysync.errors import ConfigError

__all__ = ["IMMEDIATE", "make_engine", "migrate", "normalise_url"]

IMMEDIATE = "gallerysync_immediate"
_MIGRATIONS = Path(__file__).parent / "migrations"
# The newest migration. Checked against Alembic's own view by tests/test_meta.py; knowing it here
# lets every command skip importing Alembic (~0.1 s) when the schema is already current.
HEAD_REVISION = "0007"
SQLITE_BUSY_TIMEOUT_MS = 60_000


def normalise_url(url: str) -> str:
    """Accept `postgresql://` and `postgres://` and pick the psycopg 3 driver for them."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite files get WAL, foreign keys and explicit transaction control."""
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if not database or database == ":memory:":
            raise ConfigError("the catalog needs a SQLite file, not an in-memory database")
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            poolclass=QueuePool,
            pool_size=5,
            max_overflow=20,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )
        _configure_sqlite(engine)
        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(url, pool_size=5, max_overflow=10, pool_pre_ping=True)
    raise ConfigError(f"unsupported database URL {url!r}: use sqlite:/// or postgresql://")


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent; safe with concurrent starters)."""
    if _current_revision(engine) == HEAD_REVISION:
        return  # the common case: no need to load Alembic at all
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its INFO lines are noise to users
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn = conn.execution_options(**{IMMEDIATE: True})
        if engine.dialect.name == "postgresql":
            # Serialise concurrent starters on one database.
            conn.exec_driver_sql("SELECT pg_advisory_lock(727274)")
            conn.commit()
        try:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
            conn.commit()
        finally:
            if engine.dialect.name == "postgresql":
                conn.exec_driver_sql("SELECT pg_advisory_unlock(727274)")
                conn.commit()
