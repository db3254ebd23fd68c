"""Durable jobs: enqueue (deduplicated), claim, complete, fail with backoff, recover stale claims.

Claiming on PostgreSQL uses `FOR UPDATE SKIP LOCKED` so several workers never take one job; on
SQLite the `BEGIN IMMEDIATE` write lock already makes the claim exclusive.
"""

from __future__ import annotations

import json
import os
import random
import socket
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from gallerysync.catalog import schema
from gallerysync.catalog.db import Catalog, WriteTx
from gallerysync.domain import Job, JobStatus, new_id, now_ms

__all__ = [
    "claim_job",
    "complete_job",
    "enqueue",
    "enqueue_many",
    "fail_job",
    "job_counts",
    "list_jobs",
    "recover_stale_jobs",
    "release_worker_jobs",
]

STALE_AFTER_MS = 10 * 60 * 1000


def _job(row: Mapping[str, Any]) -> Job:
    return Job(
        id=row["id"],
        kind=row["kind"],
        payload=json.loads(row["payload"]),
        status=JobStatus(row["status"]),
        attempts=row["attempts"],
        max_attempts=row["max_attempts"],
        next_attempt_at=row["next_attempt_at"],
        last_error=row["last_error"],
        dedupe_key=row["dedupe_key"],
    )


def enqueue(
    tx: WriteTx,
    kind: str,
    payload: dict[str, Any],
    *,
    dedupe_key: str | None = None,
    max_attempts: int = 5,
) -> bool:
    """Add a job unless one with the same dedupe key is pending or running. Returns True if added.

    A finished (done/failed) job with the same key is re-armed instead, so a thumbnail can be
    asked for again after its source file came back.
    """
    t = schema.jobs
    now = now_ms()
    if dedupe_key is not None:
        row = tx.conn.execute(
            select(t.c.id, t.c.status).where(t.c.dedupe_key == dedupe_key)
        ).first()
        if row is not None:
            if row.status in (JobStatus.PENDING, JobStatus.RUNNING):
                return False
            tx.conn.execute(
                update(t)
                .where(t.c.id == row.id)
                .values(
                    status=JobStatus.PENDING.value,
                    attempts=0,
                    next_attempt_at=now,
                    last_error=None,
                    payload=json.dumps(payload),
                    max_attempts=max_attempts,
                    locked_by=None,
                    locked_at=None,
                    updated_at=now,
                )
            )
            return True
    values = _new_job_row(kind, payload, dedupe_key, max_attempts, now)
    return _insert_unless_duplicate(tx, values)


def _new_job_row(
    kind: str, payload: dict[str, Any], dedupe_key: str | None, max_attempts: int, now: int
) -> dict[str, Any]:
    return {
        "id": new_id(),
        "kind": kind,
        "dedupe_key": dedupe_key,
        "payload": json.dumps(payload),
        "status": JobStatus.PENDING.value,
        "attempts": 0,
        "max_attempts": max_attempts,
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
    }


def _insert_unless_duplicate(tx: WriteTx, row: dict[str, Any]) -> bool:
    """Insert a job row; a dedupe key another transaction inserted meanwhile is skipped, not an
    error (two processes may ask for the same thumbnail at once). True when inserted."""
    dialect_insert = postgresql.insert if tx.dialect == "postgresql" else sqlite.insert
    stmt = (
        dialect_insert(schema.jobs)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(schema.jobs.c.id)
    )
    return tx.conn.execute(stmt, row).first() is not None


def enqueue_many(
    tx: WriteTx,
    kind: str,
    items: list[tuple[dict[str, Any], str]],
    *,
    max_attempts: int = 5,
    keys_are_new: bool = False,
) -> int:
    """Enqueue `(payload, dedupe_key)` pairs set-wise; keys already queued are re-armed or
    skipped exactly as `enqueue` does. Returns how many jobs were added or re-armed.

    `keys_are_new`: the caller knows no job can have these keys (they name rows created in this
    transaction), so the look-up is skipped."""
    if not items:
        return 0
    t = schema.jobs
    items = [(payload, key) for key, payload in {k: p for p, k in items}.items()]
    keys = [] if keys_are_new else [key for _payload, key in items]
    existing: set[str] = set()
    for start in range(0, len(keys), 500):
        existing.update(
            r[0]
            for r in tx.conn.execute(
                select(t.c.dedupe_key).where(t.c.dedupe_key.in_(keys[start : start + 500]))
            )
        )
    now = now_ms()
    fresh = [
        _new_job_row(kind, payload, key, max_attempts, now)
        for payload, key in items
        if key not in existing
    ]
    if fresh:
        dialect_insert = postgresql.insert if tx.dialect == "postgresql" else sqlite.insert
        tx.conn.execute(
            dialect_insert(t).on_conflict_do_nothing(index_elements=["dedupe_key"]), fresh
        )
    added = len(fresh)
    for payload, key in items:
        if key in existing:
            added += enqueue(tx, kind, payload, dedupe_key=key, max_attempts=max_attempts)
    return added


def claim_job(catalog: Catalog, worker: str, kinds: tuple[str, ...]) -> Job | None:
    """Take the oldest due job of one of `kinds`, marking it running; None when none is due."""
    t = schema.jobs
    now = now_ms()
    with catalog.write() as tx:
        query = (
            select(t)
            .where(
                t.c.status == JobStatus.PENDING.value,
                t.c.next_attempt_at <= now,
                t.c.kind.in_(kinds),
            )
            .order_by(t.c.next_attempt_at, t.c.created_at, t.c.id)
            .limit(1)
        )
        if tx.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        row = tx.conn.execute(query).mappings().first()
        if row is None:
            return None
        tx.conn.execute(
            update(t)
            .where(t.c.id == row["id"])
            .values(
                status=JobStatus.RUNNING.value,
                attempts=row["attempts"] + 1,
                locked_by=worker,
                locked_at=now,
                updated_at=now,
            )
        )
        return _job({**row, "attempts": row["attempts"] + 1, "status": JobStatus.RUNNING.value})


def complete_job(catalog: Catalog, job: Job) -> None:
    t = schema.jobs
    with catalog.write() as tx:
        tx.conn.execute(
            update(t)
            .where(t.c.id == job.id)
            .values(
                status=JobStatus.DONE.value,
                locked_by=None,
                locked_at=None,
                last_error=None,
                updated_at=now_ms(),
            )
        )


def fail_job(catalog: Catalog, job: Job, error: str, *, retryable: bool) -> JobStatus:
    """Record a failure: back off exponentially with jitter, or give up. Returns the new status."""
    t = schema.jobs
    attempts = job.attempts
    gives_up = not retryable or attempts >= job.max_attempts
    status = JobStatus.FAILED if gives_up else JobStatus.PENDING
    delay = min(3_600_000, 1000 * 2**attempts) * random.uniform(0.5, 1.0)
    with catalog.write() as tx:
        tx.conn.execute(
            update(t)
            .where(t.c.id == job.id)
            .values(
                status=status.value,
                last_error=error[:2000],
                locked_by=None,
                locked_at=None,
                next_attempt_at=now_ms() + int(delay),
                updated_at=now_ms(),
            )
        )
    return status


def recover_stale_jobs(catalog: Catalog, older_than_ms: int = STALE_AFTER_MS) -> int:
    """Put back jobs whose worker died while running them (a killed process).

    A job claimed by a process of this host that no longer exists is recovered at once; any
    other running job only once its claim is older than `older_than_ms`.
    """
    t = schema.jobs
    host = socket.gethostname()
    with catalog.write() as tx:
        rows = tx.conn.execute(
            select(t.c.id, t.c.locked_by, t.c.locked_at).where(
                t.c.status == JobStatus.RUNNING.value
            )
        ).all()
        dead = [
            r.id
            for r in rows
            if _claimed_by_dead_local_process(r.locked_by, host)
            or (r.locked_at or 0) <= now_ms() - older_than_ms
        ]
        for job_id in dead:
            tx.conn.execute(
                update(t)
                .where(t.c.id == job_id)
                .values(
                    status=JobStatus.PENDING.value,
                    locked_by=None,
                    locked_at=None,
                    updated_at=now_ms(),
                )
            )
        return len(dead)


def _claimed_by_dead_local_process(locked_by: str | None, host: str) -> bool:
    parts = (locked_by or "").split(":")
    if len(parts) < 2 or parts[0] != host or not parts[1].isdigit():
        return False
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def release_worker_jobs(catalog: Catalog, worker: str) -> int:
    """Put back the running jobs of a worker that is stopping cleanly."""
    t = schema.jobs
    with catalog.write() as tx:
        result = tx.conn.execute(
            update(t)
            .where(t.c.status == JobStatus.RUNNING.value, t.c.locked_by == worker)
            .values(status=JobStatus.PENDING.value, locked_by=None, locked_at=None)
        )
        return int(result.rowcount)


def job_counts(conn: Connection) -> dict[str, int]:
    t = schema.jobs
    rows = conn.execute(select(t.c.status, func.count()).group_by(t.c.status))
    counts = {s.value: 0 for s in JobStatus}
    counts.update({r[0]: int(r[1]) for r in rows})
    return counts


def list_jobs(conn: Connection, status: str | None = None, limit: int = 100) -> list[Job]:
    t = schema.jobs
    query = select(t).order_by(t.c.created_at.desc()).limit(limit)
    if status:
        query = query.where(t.c.status == status)
    return [_job(dict(r)) for r in conn.execute(query).mappings()]
