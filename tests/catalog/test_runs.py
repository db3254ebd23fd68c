"""Sync runs and per-(source, entity type) sync state."""

from __future__ import annotations

import os
from typing import Any

import pytest
from sqlalchemy import select, update

from gallerysync.catalog import Catalog, schema
from gallerysync.catalog.runs import finish_run, list_runs, set_sync_state, start_run
from gallerysync.domain import new_id, now_ms
from gallerysync.errors import NotFoundError
from tests.catalog.support import make_source, row_count


def _state_rows(catalog: Catalog, source_id: str) -> list[dict[str, Any]]:
    t = schema.sync_state
    with catalog.read() as conn:
        rows = conn.execute(
            select(t).where(t.c.source_id == source_id).order_by(t.c.entity_type)
        ).mappings()
        return [dict(r) for r in rows]


def test_start_and_finish_run(catalog: Catalog) -> None:
    source = make_source(catalog)
    before = now_ms()
    run_id = start_run(catalog, source.id, "full")
    with catalog.read() as conn:
        (run,) = list_runs(conn)
        pid = conn.execute(
            select(schema.sync_runs.c.pid).where(schema.sync_runs.c.id == run_id)
        ).scalar_one()
    assert run.id == run_id
    assert (run.source_id, run.mode, run.status) == (source.id, "full", "running")
    assert run.started_at >= before
    assert (run.finished_at, run.counts, run.error) == (None, {}, None)
    assert pid == os.getpid()

    finish_run(catalog, run_id, "failed", {"added": 3, "errors": 1}, error="disk vanished")
    with catalog.read() as conn:
        (done,) = list_runs(conn)
    assert done.status == "failed"
    assert done.counts == {"added": 3, "errors": 1}
    assert done.error == "disk vanished"
    assert done.finished_at is not None
    assert done.finished_at >= done.started_at


def test_list_runs_newest_first_filtered_and_limited(catalog: Catalog) -> None:
    first = make_source(catalog)
    second = make_source(catalog)
    runs = [start_run(catalog, src.id, "smart") for src in (first, second, first, second, first)]
    # Give every run a distinct start time so the order is well defined.
    with catalog.write() as tx:
        for i, run_id in enumerate(runs):
            tx.conn.execute(
                update(schema.sync_runs)
                .where(schema.sync_runs.c.id == run_id)
                .values(started_at=1_000 + i)
            )
    finish_run(catalog, runs[0], "ok", {"unchanged": 10})
    with catalog.read() as conn:
        assert [r.id for r in list_runs(conn)] == list(reversed(runs))
        assert [r.id for r in list_runs(conn, source_id=first.id)] == [runs[4], runs[2], runs[0]]
        assert [r.id for r in list_runs(conn, source_id=second.id)] == [runs[3], runs[1]]
        assert [r.id for r in list_runs(conn, limit=2)] == [runs[4], runs[3]]
        assert list_runs(conn, source_id=new_id()) == []
        oldest = list_runs(conn, source_id=first.id)[-1]
    assert (oldest.status, oldest.counts) == ("ok", {"unchanged": 10})


def test_run_needs_existing_source(catalog: Catalog) -> None:
    with pytest.raises(NotFoundError):
        start_run(catalog, new_id(), "full")
    assert row_count(catalog, schema.sync_runs) == 0


def test_set_sync_state_inserts_then_updates(catalog: Catalog) -> None:
    source = make_source(catalog)
    before = now_ms()
    set_sync_state(catalog, source.id, "asset", "cursor-1", 10)
    (row,) = _state_rows(catalog, source.id)
    assert (row["entity_type"], row["cursor"], row["last_count"]) == ("asset", "cursor-1", 10)
    assert row["last_sync_at"] >= before
    assert row["updated_at"] >= before

    set_sync_state(catalog, source.id, "album", None, None)
    set_sync_state(catalog, source.id, "asset", "cursor-2", 25)
    rows = _state_rows(catalog, source.id)
    assert [(r["entity_type"], r["cursor"], r["last_count"]) for r in rows] == [
        ("album", None, None),
        ("asset", "cursor-2", 25),
    ]
    assert rows[1]["last_sync_at"] >= row["last_sync_at"]

    other = make_source(catalog)
    set_sync_state(catalog, other.id, "asset", "x", 1)
    assert [r["cursor"] for r in _state_rows(catalog, source.id)] == [None, "cursor-2"]
    assert row_count(catalog, schema.sync_state) == 3
