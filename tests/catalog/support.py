"""Small builders shared by the catalog conformance tests (real rows, no mocks)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select

from gallerysync.catalog import Catalog
from gallerysync.catalog.assets import insert_asset, insert_origin, origins_by_remote_ids
from gallerysync.catalog.sources import create_source
from gallerysync.domain import Origin, Source, new_id

__all__ = [
    "add_asset",
    "add_origin",
    "all_changes",
    "fake_hash",
    "make_source",
    "row_count",
    "run_thread",
]

THREAD_TIMEOUT = 60.0


def fake_hash() -> str:
    """A unique 64-character hex string, shaped like a BLAKE3 content hash."""
    return uuid.uuid4().hex + uuid.uuid4().hex


def make_source(catalog: Catalog, name: str | None = None, kind: str = "folder") -> Source:
    with catalog.write() as tx:
        return create_source(
            tx,
            source_id=new_id(),
            kind=kind,
            name=name or f"src-{uuid.uuid4().hex[:8]}",
            owner_id=catalog.default_owner_id,
            options={"root": "/nowhere"},
        )


def add_asset(catalog: Catalog, **values: Any) -> str:
    """Insert one asset for the default owner; returns its id."""
    asset_id = new_id()
    row: dict[str, Any] = {
        "id": asset_id,
        "owner_id": catalog.default_owner_id,
        "hash": fake_hash(),
        "kind": "image",
        **values,
    }
    with catalog.write() as tx:
        insert_asset(tx, row)
    return str(row["id"])


def add_origin(catalog: Catalog, source: Source, asset_id: str, remote_id: str) -> Origin:
    """Insert one present origin linking `asset_id` to `source`; returns it as read back."""
    with catalog.write() as tx:
        insert_origin(
            tx,
            source.owner_id,
            {
                "id": new_id(),
                "source_id": source.id,
                "remote_id": remote_id,
                "asset_id": asset_id,
                "path": remote_id,
                "size": 10,
                "mtime_ns": 1,
            },
        )
    with catalog.read() as conn:
        return origins_by_remote_ids(conn, source.id, [remote_id])[remote_id]


def all_changes(catalog: Catalog) -> list[dict[str, Any]]:
    return catalog.changes_since(0, limit=1_000_000)


def row_count(catalog: Catalog, table: Any, *where: Any) -> int:
    with catalog.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def run_thread(target: Callable[[], None], errors: list[BaseException]) -> threading.Thread:
    """Start a daemon thread that appends any exception it raises to `errors`."""

    def wrapped() -> None:
        try:
            target()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=wrapped, daemon=True)
    thread.start()
    return thread
