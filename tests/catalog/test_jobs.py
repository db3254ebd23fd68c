"""Durable jobs: dedupe, claim, retry with backoff, give up, re-arm, recover stale claims."""

from __future__ import annotations

import functools
import threading
from typing import Any

import pytest
from sqlalchemy import select, update

from gallerysync.catalog import Catalog, schema
from gallerysync.catalog.jobs import (
    claim_job,
    complete_job,
    enqueue,
    enqueue_many,
    fail_job,
    job_counts,
    list_jobs,
    recover_stale_jobs,
    release_worker_jobs,
)
from gallerysync.domain import Job, JobStatus, now_ms
from tests.catalog.support import THREAD_TIMEOUT, row_count, run_thread

KINDS = ("thumb",)


def _add(catalog: Catalog, payload: dict[str, Any] | None = None, **kwargs: Any) -> bool:
    with catalog.write() as tx:
        return enqueue(tx, kwargs.pop("kind", "thumb"), payload or {}, **kwargs)


def _row(catalog: Catalog, job_id: str) -> dict[str, Any]:
    with catalog.read() as conn:
        row = conn.execute(select(schema.jobs).where(schema.jobs.c.id == job_id)).mappings().one()
        return dict(row)


def _id_by_key(catalog: Catalog, key: str) -> str:
    with catalog.read() as conn:
        return str(
            conn.execute(
                select(schema.jobs.c.id).where(schema.jobs.c.dedupe_key == key)
            ).scalar_one()
        )


def _set(catalog: Catalog, job_id: str, **values: Any) -> None:
    with catalog.write() as tx:
        tx.conn.execute(update(schema.jobs).where(schema.jobs.c.id == job_id).values(**values))


def _claim(catalog: Catalog, worker: str = "w1") -> Job:
    job = claim_job(catalog, worker, KINDS)
    assert job is not None
    return job


def test_enqueue_and_claim(catalog: Catalog) -> None:
    assert _add(catalog, {"asset": "a1"}, dedupe_key="thumb:a1", max_attempts=3)
    before = now_ms()
    job = _claim(catalog, "worker-1")
    assert job.kind == "thumb"
    assert job.payload == {"asset": "a1"}
    assert job.attempts == 1
    assert job.max_attempts == 3
    assert job.dedupe_key == "thumb:a1"
    row = _row(catalog, job.id)
    assert row["status"] == "running"
    assert row["attempts"] == 1
    assert row["locked_by"] == "worker-1"
    assert row["locked_at"] >= before
    assert claim_job(catalog, "worker-2", KINDS) is None  # nothing else is due


def test_claimed_job_reports_running(catalog: Catalog) -> None:
    _add(catalog, dedupe_key="k")
    job = _claim(catalog)
    assert _row(catalog, job.id)["status"] == "running"
    assert job.status == JobStatus.RUNNING


def test_dedupe_while_pending_or_running(catalog: Catalog) -> None:
    assert _add(catalog, {"n": 1}, dedupe_key="k") is True
    assert _add(catalog, {"n": 2}, dedupe_key="k") is False
    assert row_count(catalog, schema.jobs) == 1
    job = _claim(catalog)
    assert job.payload == {"n": 1}
    assert _add(catalog, {"n": 3}, dedupe_key="k") is False  # running: still deduplicated
    assert _row(catalog, job.id)["status"] == "running"
    assert row_count(catalog, schema.jobs) == 1
    # Without a key nothing is deduplicated.
    assert _add(catalog, {"n": 4}) is True
    assert _add(catalog, {"n": 4}) is True
    assert row_count(catalog, schema.jobs) == 3


def test_claim_takes_oldest_due_of_wanted_kinds(catalog: Catalog) -> None:
    now = now_ms()
    plan = {
        "late": now - 1_000,
        "early": now - 3_000,
        "future": now + 3_600_000,
        "tie-old": now - 2_000,
        "tie-new": now - 2_000,
    }
    for key in plan:
        _add(catalog, {"key": key}, dedupe_key=key)
    _add(catalog, {"key": "other"}, dedupe_key="other", kind="scan")
    for key, at in plan.items():
        _set(catalog, _id_by_key(catalog, key), next_attempt_at=at)
    _set(catalog, _id_by_key(catalog, "tie-old"), created_at=now - 10)
    _set(catalog, _id_by_key(catalog, "tie-new"), created_at=now - 5)
    _set(catalog, _id_by_key(catalog, "other"), next_attempt_at=now - 99_000)

    claimed = []
    while (job := claim_job(catalog, "w", KINDS)) is not None:
        claimed.append(job.payload["key"])
    assert claimed == ["early", "tie-old", "tie-new", "late"]
    other = claim_job(catalog, "w", ("scan", "thumb"))
    assert other is not None
    assert other.payload == {"key": "other"}
    assert claim_job(catalog, "w", ("scan", "thumb")) is None


def test_retryable_failure_backs_off(catalog: Catalog) -> None:
    _add(catalog, dedupe_key="k", max_attempts=5)
    job = _claim(catalog)
    before = now_ms()
    assert fail_job(catalog, job, "disk full", retryable=True) == JobStatus.PENDING
    after = now_ms()
    row = _row(catalog, job.id)
    assert row["status"] == "pending"
    assert row["attempts"] == 1
    assert row["last_error"] == "disk full"
    assert row["locked_by"] is None
    assert row["locked_at"] is None
    # Exponential backoff with jitter: 2**attempts seconds, times 0.5 … 1.
    assert before + 1_000 <= row["next_attempt_at"] <= after + 2_000
    assert claim_job(catalog, "w", KINDS) is None  # not due yet

    _set(catalog, job.id, next_attempt_at=0)
    again = _claim(catalog)
    assert again.id == job.id
    assert again.attempts == 2
    assert again.last_error == "disk full"


def test_gives_up_after_max_attempts(catalog: Catalog) -> None:
    _add(catalog, dedupe_key="k", max_attempts=2)
    first = _claim(catalog)
    assert fail_job(catalog, first, "e1", retryable=True) == JobStatus.PENDING
    _set(catalog, first.id, next_attempt_at=0)
    second = _claim(catalog)
    assert second.attempts == 2
    assert fail_job(catalog, second, "e2", retryable=True) == JobStatus.FAILED
    row = _row(catalog, first.id)
    assert (row["status"], row["attempts"], row["last_error"]) == ("failed", 2, "e2")
    _set(catalog, first.id, next_attempt_at=0)
    assert claim_job(catalog, "w", KINDS) is None  # failed jobs are never claimed


def test_non_retryable_failure_fails_at_once(catalog: Catalog) -> None:
    _add(catalog, dedupe_key="k", max_attempts=5)
    job = _claim(catalog)
    assert fail_job(catalog, job, "x" * 5_000, retryable=False) == JobStatus.FAILED
    row = _row(catalog, job.id)
    assert row["status"] == "failed"
    assert row["attempts"] == 1
    assert row["last_error"] == "x" * 2_000  # long errors are truncated


def test_complete_job(catalog: Catalog) -> None:
    _add(catalog, dedupe_key="k")
    job = _claim(catalog)
    complete_job(catalog, job)
    row = _row(catalog, job.id)
    assert (row["status"], row["locked_by"], row["locked_at"]) == ("done", None, None)
    _set(catalog, job.id, next_attempt_at=0)
    assert claim_job(catalog, "w", KINDS) is None


@pytest.mark.parametrize("finish", ["done", "failed"])
def test_enqueue_rearms_finished_job(catalog: Catalog, finish: str) -> None:
    _add(catalog, {"v": 1}, dedupe_key="k", max_attempts=1)
    job = _claim(catalog)
    if finish == "done":
        complete_job(catalog, job)
    else:
        fail_job(catalog, job, "broken", retryable=True)  # max_attempts=1: gives up
    assert _row(catalog, job.id)["status"] == finish

    assert _add(catalog, {"v": 2}, dedupe_key="k", max_attempts=4) is True
    row = _row(catalog, job.id)
    assert row["status"] == "pending"
    assert row["attempts"] == 0
    assert row["max_attempts"] == 4
    assert row["last_error"] is None
    assert row["next_attempt_at"] <= now_ms()
    assert row_count(catalog, schema.jobs) == 1  # the same row, re-armed
    again = _claim(catalog)
    assert (again.id, again.payload, again.attempts) == (job.id, {"v": 2}, 1)


def test_recover_stale_jobs(catalog: Catalog) -> None:
    for key in ("a", "b", "c"):
        _add(catalog, dedupe_key=key)
    a = _claim(catalog, "dead-worker")
    b = _claim(catalog, "dead-worker")
    assert recover_stale_jobs(catalog) == 0  # fresh claims are not stale
    locked_at = max(_row(catalog, a.id)["locked_at"], _row(catalog, b.id)["locked_at"])
    while now_ms() <= locked_at:  # `older than 0 ms` needs the clock to tick once
        pass
    assert recover_stale_jobs(catalog, older_than_ms=0) == 2
    for job in (a, b):
        row = _row(catalog, job.id)
        assert (row["status"], row["locked_by"], row["locked_at"]) == ("pending", None, None)
        assert row["attempts"] == 1
    reclaimed = {_claim(catalog).id for _ in range(3)}
    assert reclaimed == {_id_by_key(catalog, key) for key in ("a", "b", "c")}
    assert recover_stale_jobs(catalog) == 0


def test_release_worker_jobs(catalog: Catalog) -> None:
    for key in ("a", "b", "c"):
        _add(catalog, dedupe_key=key)
    mine = _claim(catalog, "me")
    theirs = _claim(catalog, "them")
    assert release_worker_jobs(catalog, "me") == 1
    assert _row(catalog, mine.id)["status"] == "pending"
    assert _row(catalog, theirs.id)["status"] == "running"
    assert release_worker_jobs(catalog, "me") == 0


def test_job_counts_and_list(catalog: Catalog) -> None:
    with catalog.read() as conn:
        assert job_counts(conn) == {"pending": 0, "running": 0, "done": 0, "failed": 0}
    for key in ("a", "b", "c", "d", "e"):
        _add(catalog, dedupe_key=key)
    done = _claim(catalog)
    complete_job(catalog, done)
    failed = _claim(catalog)
    fail_job(catalog, failed, "no", retryable=False)
    running = _claim(catalog)
    with catalog.read() as conn:
        assert job_counts(conn) == {"pending": 2, "running": 1, "done": 1, "failed": 1}
        assert [j.id for j in list_jobs(conn, status="running")] == [running.id]
        assert [j.id for j in list_jobs(conn, status="failed")] == [failed.id]
        assert len(list_jobs(conn)) == 5
        assert len(list_jobs(conn, limit=2)) == 2


def test_concurrent_claims_never_share_a_job(two_catalogs: tuple[Catalog, Catalog]) -> None:
    """Four workers on two handles (so PostgreSQL really runs the claims in parallel)."""
    cat1, cat2 = two_catalogs
    total = 50
    with cat1.write() as tx:
        for i in range(total):
            enqueue(tx, "thumb", {"i": i}, dedupe_key=f"job-{i}")
    claimed: dict[str, list[str]] = {}
    lock = threading.Lock()
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def worker(catalog: Catalog, name: str) -> None:
        start.wait(THREAD_TIMEOUT)
        while (job := claim_job(catalog, name, KINDS)) is not None:
            with lock:
                claimed.setdefault(job.id, []).append(name)

    threads = [
        run_thread(functools.partial(worker, catalog, f"w{i}"), errors)
        for i, catalog in enumerate((cat1, cat2, cat1, cat2))
    ]
    for thread in threads:
        thread.join(THREAD_TIMEOUT)
    assert not any(t.is_alive() for t in threads)
    assert not errors
    assert len(claimed) == total
    assert all(len(names) == 1 for names in claimed.values()), claimed
    with cat2.read() as conn:
        assert job_counts(conn)["running"] == total
        rows = conn.execute(
            select(schema.jobs.c.id, schema.jobs.c.locked_by, schema.jobs.c.attempts)
        )
        for job_id, locked_by, attempts in rows:
            assert [locked_by] == claimed[job_id]
            assert attempts == 1


def test_enqueue_many_deduplicates_within_and_across_batches(catalog: Catalog) -> None:
    with catalog.write() as tx:
        added = enqueue_many(tx, "thumbnail", [({"n": 1}, "a"), ({"n": 2}, "a"), ({"n": 3}, "b")])
    assert added == 2
    with catalog.write() as tx:
        assert enqueue_many(tx, "thumbnail", [({"n": 4}, "a"), ({"n": 5}, "c")]) == 1
    assert row_count(catalog, schema.jobs) == 3
