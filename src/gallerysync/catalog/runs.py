"""Sync runs (what each sync did) and per-(source, entity type) sync state."""

from __future__ import annotations

import json
import os

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, RowMapping

from gallerysync.catalog import schema
from gallerysync.catalog.db import Catalog
from gallerysync.domain import SyncRun, new_id, now_ms

__all__ = ["finish_run", "list_runs", "set_sync_state", "start_run"]


def _run(row: RowMapping) -> SyncRun:
    return SyncRun(
        id=row["id"],
        source_id=row["source_id"],
        mode=row["mode"],
        status=row["status"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        counts=json.loads(row["counts"]),
        error=row["error"],
    )


def start_run(catalog: Catalog, source_id: str, mode: str) -> str:
    """Record a new run; runs of this source still marked running were interrupted (the caller
    holds the source's scan lock, so no other run of it can be alive)."""
    run_id = new_id()
    t = schema.sync_runs
    with catalog.write() as tx:
        tx.conn.execute(
            update(t)
            .where(t.c.source_id == source_id, t.c.status == "running")
            .values(status="interrupted", finished_at=now_ms())
        )
        tx.conn.execute(
            insert(schema.sync_runs).values(
                id=run_id,
                source_id=source_id,
                mode=mode,
                status="running",
                started_at=now_ms(),
                counts="{}",
                pid=os.getpid(),
            )
        )
    return run_id


def finish_run(
    catalog: Catalog, run_id: str, status: str, counts: dict[str, int], error: str | None = None
) -> None:
    with catalog.write() as tx:
        tx.conn.execute(
            update(schema.sync_runs)
            .where(schema.sync_runs.c.id == run_id)
            .values(
                status=status,
                finished_at=now_ms(),
                counts=json.dumps(counts),
                error=error,
            )
        )


def list_runs(conn: Connection, source_id: str | None = None, limit: int = 50) -> list[SyncRun]:
    t = schema.sync_runs
    query = select(t).order_by(t.c.started_at.desc()).limit(limit)
    if source_id:
        query = query.where(t.c.source_id == source_id)
    return [_run(r) for r in conn.execute(query).mappings()]


def set_sync_state(
    catalog: Catalog, source_id: str, entity_type: str, cursor: str | None, count: int | None
) -> None:
    t = schema.sync_state
    now = now_ms()
    with catalog.write() as tx:
        exists = tx.conn.execute(
            select(t.c.source_id).where(t.c.source_id == source_id, t.c.entity_type == entity_type)
        ).first()
        values = {"cursor": cursor, "last_sync_at": now, "last_count": count, "updated_at": now}
        if exists:
            tx.conn.execute(
                update(t)
                .where(t.c.source_id == source_id, t.c.entity_type == entity_type)
                .values(**values)
            )
        else:
            tx.conn.execute(
                insert(t).values(source_id=source_id, entity_type=entity_type, **values)
            )
