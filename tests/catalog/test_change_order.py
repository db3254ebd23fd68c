"""Sequence numbers are allocated last, under a lock held to commit: they appear in commit order.

A reader that has seen seq N must never later find a change with a smaller seq appear, otherwise
a feed consumer that resumes from N would silently miss it (DESIGN §4).
"""

from __future__ import annotations

import functools
import threading
import time

from gallerysync.catalog import Catalog
from gallerysync.catalog.assets import get_asset, insert_asset
from gallerysync.domain import new_id
from gallerysync.errors import NotFoundError
from tests.catalog.support import THREAD_TIMEOUT, fake_hash, run_thread

# How long writer 2 must stay blocked behind writer 1's SQLite write lock. Only a negative check:
# it can never fail spuriously, it just proves writer 2 did not get in.
BLOCKED_FOR = 0.5


def _asset_row(catalog: Catalog, asset_id: str) -> dict[str, object]:
    return {
        "id": asset_id,
        "owner_id": catalog.default_owner_id,
        "hash": fake_hash(),
        "kind": "image",
    }


def _visible(catalog: Catalog, asset_id: str) -> bool:
    with catalog.read() as conn:
        try:
            get_asset(conn, asset_id)
        except NotFoundError:
            return False
    return True


def test_seqs_follow_commit_order_not_start_order(
    two_catalogs: tuple[Catalog, Catalog],
) -> None:
    cat1, cat2 = two_catalogs
    reader = cat1
    base = reader.head()
    asset1, asset2 = new_id(), new_id()
    commits: list[str] = []  # commit order, observed through the commit listeners
    cat1.add_commit_listener(lambda head: commits.append("w1"))
    cat2.add_commit_listener(lambda head: commits.append("w2"))
    heads: dict[str, int | None] = {}
    errors: list[BaseException] = []
    w1_working = threading.Event()
    w1_release = threading.Event()
    w2_started = threading.Event()
    w2_done = threading.Event()

    def writer1() -> None:
        try:
            with cat1.write() as tx:
                insert_asset(tx, _asset_row(cat1, asset1))  # does work and records a change
                w1_working.set()
                if not w1_release.wait(THREAD_TIMEOUT):
                    raise TimeoutError("writer 1 was never released")
            heads["w1"] = tx.head
        finally:
            w1_working.set()

    def writer2() -> None:
        w2_started.set()
        with cat2.write() as tx:
            insert_asset(tx, _asset_row(cat2, asset2))
        heads["w2"] = tx.head
        w2_done.set()

    t1 = run_thread(writer1, errors)
    assert w1_working.wait(THREAD_TIMEOUT)
    assert not errors
    t2 = run_thread(writer2, errors)
    assert w2_started.wait(THREAD_TIMEOUT)

    if reader.dialect == "postgresql":
        # Writer 1 holds an open transaction but has not allocated its seq yet, so writer 2 is
        # not blocked: it commits first and gets the next seq.
        assert w2_done.wait(THREAD_TIMEOUT), f"writer 2 did not commit: {errors}"
        assert heads["w2"] == base + 1
        assert reader.head() == base + 1
        assert [c["entity_id"] for c in reader.changes_since(base)] == [asset2]
        assert _visible(reader, asset2)
        assert not _visible(reader, asset1)
        seen_up_to = reader.head()
        w1_release.set()
        t1.join(THREAD_TIMEOUT)
        t2.join(THREAD_TIMEOUT)
        assert not errors
        assert commits == ["w2", "w1"]
        assert heads["w1"] == base + 2
        # A reader that had consumed the feed up to writer 2 still gets writer 1's change.
        assert [c["entity_id"] for c in reader.changes_since(seen_up_to)] == [asset1]
    else:
        # SQLite: BEGIN IMMEDIATE takes the database write lock up front; writer 2 waits.
        assert not w2_done.wait(BLOCKED_FOR), "writer 2 committed inside writer 1's transaction"
        assert reader.head() == base
        w1_release.set()
        t1.join(THREAD_TIMEOUT)
        t2.join(THREAD_TIMEOUT)
        assert not errors
        assert commits == ["w1", "w2"]
        assert heads["w1"] == base + 1
        assert heads["w2"] == base + 2

    assert not t1.is_alive()
    assert not t2.is_alive()
    assert reader.head() == base + 2
    changes = reader.changes_since(base)
    assert [c["seq"] for c in changes] == [base + 1, base + 2]
    order = [asset2, asset1] if reader.dialect == "postgresql" else [asset1, asset2]
    assert [c["entity_id"] for c in changes] == order


def test_concurrent_writers_get_disjoint_contiguous_seqs(
    two_catalogs: tuple[Catalog, Catalog],
) -> None:
    """Two handles writing at once: no seq is handed out twice, none is skipped."""
    cat1, cat2 = two_catalogs
    base = cat1.head()
    errors: list[BaseException] = []
    heads: list[tuple[str, int]] = []
    lock = threading.Lock()

    def write(catalog: Catalog, name: str, count: int) -> None:
        for i in range(count):
            with catalog.write() as tx:
                tx.record("scope", "thing", f"{name}-{i}", "upsert", 1)
            assert tx.head is not None
            with lock:
                heads.append((name, tx.head))

    threads = [
        run_thread(functools.partial(write, cat1, "a", 30), errors),
        run_thread(functools.partial(write, cat2, "b", 30), errors),
    ]
    for thread in threads:
        thread.join(THREAD_TIMEOUT)
    assert not errors
    assert sorted(h for _, h in heads) == list(range(base + 1, base + 61))
    changes = cat1.changes_since(base)
    assert [c["seq"] for c in changes] == list(range(base + 1, base + 61))
    # Each writer's own changes are in its own program order.
    for name in ("a", "b"):
        mine = [c["entity_id"] for c in changes if c["entity_id"].startswith(name)]
        assert mine == [f"{name}-{i}" for i in range(30)]


def test_polling_reader_never_sees_a_gap(two_catalogs: tuple[Catalog, Catalog]) -> None:
    """Concurrent writers on two handles; a reader polling the feed only ever sees a prefix."""
    cat1, cat2 = two_catalogs
    base = cat1.head()
    writers_per_catalog, writes_each, changes_per_write = 2, 15, 3
    expected = base + 2 * writers_per_catalog * writes_each * changes_per_write
    errors: list[BaseException] = []
    start = threading.Barrier(2 * writers_per_catalog + 1)

    def writer(catalog: Catalog, name: str) -> None:
        start.wait(THREAD_TIMEOUT)
        for i in range(writes_each):
            with catalog.write() as tx:
                for j in range(changes_per_write):
                    tx.record("scope", "thing", f"{name}-{i}-{j}", "upsert", 1)

    threads = [
        run_thread(functools.partial(writer, c, f"{k}{w}"), errors)
        for k, c in enumerate((cat1, cat2))
        for w in range(writers_per_catalog)
    ]
    start.wait(THREAD_TIMEOUT)
    cursor = base
    batches = 0
    deadline = time.monotonic() + THREAD_TIMEOUT
    while cursor < expected:
        assert time.monotonic() < deadline, f"reader stuck at {cursor}: {errors}"
        batch = cat1.changes_since(cursor, limit=7)
        seqs = [c["seq"] for c in batch]
        # Whatever is visible is exactly the next seqs: nothing can appear below the cursor.
        assert seqs == list(range(cursor + 1, cursor + 1 + len(seqs)))
        if seqs:
            batches += 1
            cursor = seqs[-1]
    for thread in threads:
        thread.join(THREAD_TIMEOUT)
    assert not errors
    assert cursor == expected == cat2.head()
    assert batches > 0
