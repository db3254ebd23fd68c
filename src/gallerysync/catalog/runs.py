"""Sync runs (what each sync did) and per-(source, entity type) sync state."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, RowMapping

from gallerysync.catalog import schema
from gallerysync.catalog.db import Catalog, WriteTx
from gallerysync.domain import Source, SyncRun, new_id, now_ms
from gallerysync.errors import NotFoundError

__all__ = [
    "finish_run",
    "list_runs",
    "record_progress",
    "run_states",
    "set_sync_state",
    "start_run",
]


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


def _owner_of(tx: WriteTx, source_id: str) -> str:
    owner = tx.conn.execute(
        select(schema.sources.c.owner_id).where(schema.sources.c.id == source_id)
    ).scalar_one_or_none()
    if owner is None:
        raise NotFoundError(f"no source {source_id!r}")
    return str(owner)


def start_run(catalog: Catalog, source_id: str, mode: str) -> str:
    """Record a new run; runs of this source still marked running were interrupted (the caller
    holds the source's scan lock, so no other run of it can be alive). Every change of a run
    is logged in the feed (type `sync_run`), so progress reaches clients live."""
    run_id = new_id()
    t = schema.sync_runs
    with catalog.write() as tx:
        owner = _owner_of(tx, source_id)
        stale = [
            r[0]
            for r in tx.conn.execute(
                select(t.c.id).where(t.c.source_id == source_id, t.c.status == "running")
            )
        ]
        if stale:
            tx.conn.execute(
                update(t)
                .where(t.c.id.in_(stale))
                .values(status="interrupted", finished_at=now_ms(), progress=None)
            )
            for stale_id in stale:
                tx.record(owner, "sync_run", stale_id, "upsert", 1)
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
        tx.record(owner, "sync_run", run_id, "upsert", 1)
    return run_id


def record_progress(tx: WriteTx, source: Source, run_id: str, done: int, total: int) -> None:
    """Inside the caller's batch transaction: the run's progress, and its feed entry."""
    tx.conn.execute(
        update(schema.sync_runs)
        .where(schema.sync_runs.c.id == run_id)
        .values(progress=json.dumps({"done": done, "total": total}))
    )
    tx.record(source.owner_id, "sync_run", run_id, "upsert", 1)


def run_states(conn: Connection, run_ids: Sequence[str]) -> list[dict[str, Any]]:
    """Runs as the change feed shows them: the run, and its progress while it runs."""
    t = schema.sync_runs
    rows = conn.execute(select(t).where(t.c.id.in_(run_ids))).mappings()
    return [
        dataclasses.asdict(_run(r))
        | {"progress": json.loads(r["progress"]) if r["progress"] else None}
        for r in rows
    ]


def finish_run(
    catalog: Catalog, run_id: str, status: str, counts: dict[str, int], error: str | None = None
) -> None:
    with catalog.write() as tx:
        source_id = tx.conn.execute(
            update(schema.sync_runs)
            .where(schema.sync_runs.c.id == run_id)
            .values(
                status=status,
                finished_at=now_ms(),
                counts=json.dumps(counts),
                error=error,
                progress=None,
            )
            .returning(schema.sync_runs.c.source_id)
        ).scalar_one()
        tx.record(_owner_of(tx, source_id), "sync_run", run_id, "upsert", 1)


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
