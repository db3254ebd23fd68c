"""Sources and storage dirs in the catalog."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection, RowMapping

from gallerysync.catalog import schema
from gallerysync.catalog.assets import refresh_asset_status
from gallerysync.catalog.db import WriteTx
from gallerysync.domain import OriginStatus, Source, SourceStatus, StorageDir, now_ms
from gallerysync.errors import ConflictError, NotFoundError

__all__ = [
    "create_source",
    "find_source",
    "get_source",
    "get_storage_dir",
    "list_sources",
    "list_storage_dirs",
    "mark_scanned",
    "origin_counts",
    "remove_source",
    "set_source_status",
    "upsert_storage_dir",
]


def _source(row: RowMapping) -> Source:
    return Source(
        id=row["id"],
        kind=row["kind"],
        name=row["name"],
        owner_id=row["owner_id"],
        options=json.loads(row["options"]),
        status=SourceStatus(row["status"]),
        status_detail=row["status_detail"],
        created_at=row["created_at"],
    )


def _storage_dir(row: RowMapping) -> StorageDir:
    return StorageDir(
        source_id=row["source_id"],
        root=row["root"],
        id_file_status=row["id_file_status"],
        alias_id=row["alias_id"],
        detail=row["detail"],
        last_scan_at=row["last_scan_at"],
    )


def create_source(
    tx: WriteTx, *, source_id: str, kind: str, name: str, owner_id: str, options: dict[str, Any]
) -> Source:
    conn = tx.conn
    if conn.execute(select(schema.sources.c.id).where(schema.sources.c.id == source_id)).first():
        existing = get_source(conn, source_id)
        raise ConflictError(f"this {kind} source is already added as {existing.name!r}")
    if conn.execute(select(schema.sources.c.id).where(schema.sources.c.name == name)).first():
        raise ConflictError(f"a source named {name!r} already exists")
    now = now_ms()
    conn.execute(
        insert(schema.sources).values(
            id=source_id,
            kind=kind,
            name=name,
            owner_id=owner_id,
            options=json.dumps(options, sort_keys=True),
            status=SourceStatus.OK.value,
            status_detail="",
            created_at=now,
            updated_at=now,
        )
    )
    tx.record(owner_id, "source", source_id, "upsert", 1)
    return get_source(conn, source_id)


def get_source(conn: Connection, source_id: str) -> Source:
    row = conn.execute(select(schema.sources).where(schema.sources.c.id == source_id)).mappings()
    found = row.first()
    if found is None:
        raise NotFoundError(f"no source with id {source_id}")
    return _source(found)


def find_source(conn: Connection, name_or_id: str, owner_id: str | None = None) -> Source:
    """Look a source up by its name, else by its id; with `owner_id`, only that user's (another
    user's source is reported as not existing)."""
    table = schema.sources
    row = conn.execute(select(table).where(table.c.name == name_or_id)).mappings().first()
    if row is None:
        row = conn.execute(select(table).where(table.c.id == name_or_id)).mappings().first()
    if row is None or (owner_id is not None and row["owner_id"] != owner_id):
        raise NotFoundError(f"no source named {name_or_id!r} (see `gallerysync source list`)")
    return _source(row)


def origin_counts(conn: Connection, source_id: str) -> dict[str, int]:
    """How many files of a source are present and missing (every status, zeros included)."""
    o = schema.origins
    counts = {status.value: 0 for status in OriginStatus}
    for status, n in conn.execute(
        select(o.c.status, func.count()).where(o.c.source_id == source_id).group_by(o.c.status)
    ):
        counts[status] = int(n)
    return counts


def list_sources(conn: Connection, kind: str | None = None) -> list[Source]:
    query = select(schema.sources).order_by(schema.sources.c.name)
    if kind:
        query = query.where(schema.sources.c.kind == kind)
    return [_source(r) for r in conn.execute(query).mappings()]


def set_source_status(tx: WriteTx, source: Source, status: SourceStatus, detail: str) -> bool:
    """Set status; returns True when it changed (and logs a change only then)."""
    current = get_source(tx.conn, source.id)
    if current.status == status and current.status_detail == detail:
        return False
    tx.conn.execute(
        update(schema.sources)
        .where(schema.sources.c.id == source.id)
        .values(status=status.value, status_detail=detail, updated_at=now_ms())
    )
    tx.record(source.owner_id, "source", source.id, "upsert", 1)
    return True


def remove_source(tx: WriteTx, source: Source) -> int:
    """Delete a source, its origins, runs and scan cache. Assets left without origins go
    missing.

    Returns how many assets became missing. Assets themselves are kept (history, thumbnails).
    """
    conn = tx.conn
    asset_ids = [
        r[0]
        for r in conn.execute(
            select(schema.origins.c.asset_id).where(schema.origins.c.source_id == source.id)
        )
    ]
    runs = schema.sync_runs
    for (run_id,) in conn.execute(select(runs.c.id).where(runs.c.source_id == source.id)):
        tx.record(source.owner_id, "sync_run", run_id, "delete", 0)  # its runs go with it
    conn.execute(delete(schema.scan_cache).where(schema.scan_cache.c.sd_id == source.id))
    for table in (schema.origins, schema.storage_dirs, schema.sync_state, schema.sync_runs):
        conn.execute(delete(table).where(table.c.source_id == source.id))
    conn.execute(delete(schema.sources).where(schema.sources.c.id == source.id))
    tx.record(source.owner_id, "source", source.id, "delete", 0)
    return refresh_asset_status(tx, set(asset_ids))


def upsert_storage_dir(
    tx: WriteTx,
    *,
    source_id: str,
    root: str,
    id_file_status: str,
    alias_id: str | None,
    detail: str,
    scanned: bool = False,
) -> None:
    """Record a storage dir's root and id-file state; writes nothing when it is unchanged
    (every watcher batch re-checks the id file). `scanned` also stamps the scan time."""
    table = schema.storage_dirs
    values: dict[str, Any] = {
        "root": root,
        "id_file_status": id_file_status,
        "alias_id": alias_id,
        "detail": detail,
    }
    current = (
        tx.conn.execute(
            select(table.c.root, table.c.id_file_status, table.c.alias_id, table.c.detail).where(
                table.c.source_id == source_id
            )
        )
        .mappings()
        .first()
    )
    if current is None:
        tx.conn.execute(insert(table).values(source_id=source_id, **values))
    elif dict(current) != values:
        tx.conn.execute(update(table).where(table.c.source_id == source_id).values(**values))
    if scanned:
        mark_scanned(tx, source_id)


def mark_scanned(tx: WriteTx, source_id: str) -> None:
    tx.conn.execute(
        update(schema.storage_dirs)
        .where(schema.storage_dirs.c.source_id == source_id)
        .values(last_scan_at=now_ms())
    )


def get_storage_dir(conn: Connection, source_id: str) -> StorageDir:
    table = schema.storage_dirs
    row = conn.execute(select(table).where(table.c.source_id == source_id)).mappings().first()
    if row is None:
        raise NotFoundError(f"source {source_id} has no storage dir")
    return _storage_dir(row)


def list_storage_dirs(conn: Connection) -> list[StorageDir]:
    return [_storage_dir(r) for r in conn.execute(select(schema.storage_dirs)).mappings()]
