"""Shared fixtures: real SQLite files, a real PostgreSQL database per test, image factories.

PostgreSQL tests use `GALLERYSYNC_TEST_POSTGRES_URL` (default: the local server's `test`
database with trust auth). Each test gets a fresh database created from it and dropped after.
Without a reachable server they skip — unless `GALLERYSYNC_REQUIRE_SERVICES=1` (CI), where a
missing server is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from gallerysync.catalog import Catalog

PG_URL = os.environ.get(
    "GALLERYSYNC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REQUIRE_SERVICES = os.environ.get("GALLERYSYNC_REQUIRE_SERVICES") == "1"
_pg_reason: str | None = None


def _postgres_unavailable() -> str | None:
    global _pg_reason
    if _pg_reason is None:
        try:
            engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            engine.dispose()
            _pg_reason = ""
        except Exception as exc:
            _pg_reason = f"PostgreSQL at {PG_URL} is not reachable: {exc}"
    return _pg_reason or None


def require_postgres() -> None:
    reason = _postgres_unavailable()
    if reason:
        if REQUIRE_SERVICES:
            pytest.fail(reason + " (GALLERYSYNC_REQUIRE_SERVICES=1)")
        pytest.skip(reason)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test."""
    require_postgres()
    name = f"gs_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :n AND pid <> pg_backend_pid()"
                ),
                {"n": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'catalog.sqlite3'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every catalog test runs on both databases."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def catalog(catalog_url: str) -> Iterator[Catalog]:
    opened = Catalog.open(catalog_url)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def sqlite_catalog(sqlite_url: str) -> Iterator[Catalog]:
    opened = Catalog.open(sqlite_url)
    try:
        yield opened
    finally:
        opened.close()
