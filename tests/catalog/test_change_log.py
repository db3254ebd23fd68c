"""The change log: every recorded mutation gets a contiguous sequence number at commit."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from gallerysync.catalog import Catalog, schema
from gallerysync.catalog.assets import (
    get_asset,
    insert_asset,
    mark_origins_missing,
    refresh_asset_status,
    repoint_origin,
    set_thumbnail,
)
from gallerysync.catalog.sources import remove_source, set_source_status
from gallerysync.domain import AssetStatus, OriginStatus, SourceStatus, new_id, now_ms
from gallerysync.errors import NotFoundError
from tests.catalog.support import (
    add_asset,
    add_origin,
    all_changes,
    fake_hash,
    make_source,
    row_count,
)


class Boom(Exception):
    pass


def _assert_feed_contiguous(catalog: Catalog) -> list[dict[str, Any]]:
    changes = all_changes(catalog)
    seqs = [c["seq"] for c in changes]
    assert seqs == list(range(1, len(seqs) + 1))
    assert catalog.head() == (seqs[-1] if seqs else 0)
    return changes


def _blob(tx_conn: Any, blob_hash: str) -> None:
    tx_conn.execute(
        insert(schema.blobs).values(hash=blob_hash, size=1, role="original", created_at=now_ms())
    )


def test_every_recorded_mutation_gets_contiguous_seqs(catalog: Catalog) -> None:
    source = make_source(catalog)
    asset_id = add_asset(catalog)
    origin = add_origin(catalog, source, asset_id, "a.jpg")
    with catalog.write() as tx:
        set_source_status(tx, source, SourceStatus.OFFLINE, "gone")
        set_thumbnail(tx, asset_id, fake_hash())
    with catalog.write() as tx:
        affected = mark_origins_missing(tx, source.owner_id, [origin])
        refresh_asset_status(tx, affected)
    with catalog.write() as tx:
        assert remove_source(tx, source) == 0  # the asset was already missing

    changes = _assert_feed_contiguous(catalog)
    logged = [(c["entity_type"], c["entity_id"], c["op"], c["version"]) for c in changes]
    # Origins are logged through their asset: no "origin" rows, not even for the insert.
    assert logged == [
        ("user", catalog.default_owner_id, "upsert", 1),
        ("source", source.id, "upsert", 1),
        ("asset", asset_id, "upsert", 1),
        ("source", source.id, "upsert", 1),
        ("asset", asset_id, "upsert", 2),  # thumbnail
        ("asset", asset_id, "upsert", 3),  # origin went missing
        ("source", source.id, "delete", 0),
        ("asset", asset_id, "upsert", 4),  # origin deleted with its source; still missing
    ]
    assert all(c["scope"] == catalog.default_owner_id for c in changes)
    assert all(c["at"] > 0 for c in changes)


def test_one_transaction_gets_one_contiguous_block(catalog: Catalog) -> None:
    before = catalog.head()
    ids = [new_id() for _ in range(7)]
    with catalog.write() as tx:
        for asset_id in ids:
            insert_asset(
                tx,
                {
                    "id": asset_id,
                    "owner_id": catalog.default_owner_id,
                    "hash": fake_hash(),
                    "kind": "image",
                },
            )
    assert tx.head == before + 7 == catalog.head()
    changes = catalog.changes_since(before)
    assert [c["seq"] for c in changes] == list(range(before + 1, before + 8))
    assert [c["entity_id"] for c in changes] == ids  # in the order they were recorded
    _assert_feed_contiguous(catalog)


def test_head_equals_last_seq_across_many_writes(catalog: Catalog) -> None:
    for i in range(1, 6):
        with catalog.write() as tx:
            for j in range(i):
                tx.record("scope", "thing", f"{i}-{j}", "upsert", 1)
    changes = _assert_feed_contiguous(catalog)
    assert len(changes) == 1 + sum(range(1, 6))


def test_changes_since_pages_in_seq_order(catalog: Catalog) -> None:
    with catalog.write() as tx:
        for i in range(10):
            tx.record("scope", "thing", str(i), "upsert", 1)
    seen: list[int] = []
    cursor = 0
    while page := catalog.changes_since(cursor, limit=3):
        assert len(page) <= 3
        seen.extend(c["seq"] for c in page)
        cursor = page[-1]["seq"]
    assert seen == list(range(1, catalog.head() + 1))
    assert catalog.changes_since(catalog.head()) == []


def test_write_without_records_does_not_advance_head(catalog: Catalog) -> None:
    before = catalog.head()
    with catalog.write() as tx:
        _blob(tx.conn, fake_hash())
    assert tx.head is None
    assert catalog.head() == before
    assert row_count(catalog, schema.blobs) == 1


def test_rolled_back_write_logs_nothing(catalog: Catalog) -> None:
    before = catalog.head()
    changes_before = all_changes(catalog)
    asset_id = new_id()
    blob_hash = fake_hash()
    with pytest.raises(Boom), catalog.write() as tx:
        insert_asset(
            tx,
            {
                "id": asset_id,
                "owner_id": catalog.default_owner_id,
                "hash": fake_hash(),
                "kind": "image",
            },
        )
        _blob(tx.conn, blob_hash)
        tx.record("scope", "thing", "x", "upsert", 1)
        raise Boom
    assert catalog.head() == before
    assert all_changes(catalog) == changes_before
    assert row_count(catalog, schema.blobs) == 0
    with catalog.read() as conn, pytest.raises(NotFoundError):
        get_asset(conn, asset_id)
    # The sequence continues without a gap after the rollback.
    with catalog.write() as tx:
        tx.record("scope", "thing", "y", "upsert", 1)
    assert tx.head == before + 1
    _assert_feed_contiguous(catalog)


def test_failed_statement_rolls_back_whole_write(catalog: Catalog) -> None:
    before = catalog.head()
    asset_id = add_asset(catalog)
    with catalog.read() as conn:
        existing_hash = get_asset(conn, asset_id).hash
    second = new_id()
    with pytest.raises(IntegrityError), catalog.write() as tx:
        tx.record("scope", "thing", "doomed", "upsert", 1)
        insert_asset(
            tx,
            {
                "id": second,
                "owner_id": catalog.default_owner_id,
                "hash": existing_hash,
                "kind": "image",
            },
        )
    assert catalog.head() == before + 1  # only the first asset
    assert [c["entity_id"] for c in catalog.changes_since(before)] == [asset_id]


def test_changes_to_one_entity_collapse_to_the_last(catalog: Catalog) -> None:
    before = catalog.head()
    with catalog.write() as tx:
        tx.record("s1", "asset", "a", "upsert", 1)
        tx.record("s1", "asset", "b", "upsert", 1)
        tx.record("s1", "asset", "a", "upsert", 2)
        tx.record("s1", "origin", "a", "upsert", 1)  # same id, other type: a distinct entity
        tx.record("s2", "asset", "a", "delete", 3)
    changes = catalog.changes_since(before)
    assert [
        (c["entity_type"], c["entity_id"], c["op"], c["version"], c["scope"]) for c in changes
    ] == [
        ("asset", "b", "upsert", 1, "s1"),
        ("origin", "a", "upsert", 1, "s1"),
        ("asset", "a", "delete", 3, "s2"),  # the last change wins and moves to the end
    ]
    assert tx.head == before + 3 == catalog.head()


def test_collapse_through_domain_helpers(catalog: Catalog) -> None:
    source = make_source(catalog)
    asset_id = add_asset(catalog)
    origin = add_origin(catalog, source, asset_id, "a.jpg")
    before = catalog.head()

    # Origin helpers alone log nothing.
    with catalog.write() as tx:
        mark_origins_missing(tx, source.owner_id, [origin])
        repoint_origin(tx, source.owner_id, origin, {"path": "b.jpg"})
    assert tx.head is None
    assert catalog.head() == before

    # Every refresh logs the asset at its bumped version; within one tx they collapse to the last.
    with catalog.read() as conn:
        (origin,) = get_asset(conn, asset_id).origins
    with catalog.write() as tx:
        assert refresh_asset_status(tx, mark_origins_missing(tx, source.owner_id, [origin])) == 1
        repoint_origin(tx, source.owner_id, origin, {"path": "c.jpg"})
        assert refresh_asset_status(tx, [asset_id]) == 0  # present again
        assert refresh_asset_status(tx, [asset_id]) == 0  # status unchanged, still logged
    assert tx.head == before + 1 == catalog.head()
    changes = catalog.changes_since(before)
    assert [(c["entity_type"], c["entity_id"], c["op"], c["version"]) for c in changes] == [
        ("asset", asset_id, "upsert", 4)
    ]
    with catalog.read() as conn:
        asset = get_asset(conn, asset_id)
    assert (asset.status, asset.version) == (AssetStatus.PRESENT, 4)
    assert [(o.status, o.path) for o in asset.origins] == [(OriginStatus.PRESENT, "c.jpg")]


def test_commit_listeners_get_the_new_head(catalog: Catalog) -> None:
    heads: list[int] = []
    catalog.add_commit_listener(heads.append)
    with catalog.write() as tx:
        tx.record("scope", "thing", "1", "upsert", 1)
        tx.record("scope", "thing", "2", "upsert", 1)
    assert heads == [catalog.head()] == [tx.head]

    with catalog.write() as tx:
        _blob(tx.conn, fake_hash())  # logs nothing: no notification
    with pytest.raises(Boom), catalog.write() as tx:
        tx.record("scope", "thing", "3", "upsert", 1)
        raise Boom  # rolled back: no notification
    assert heads == [catalog.head()]

    catalog.remove_commit_listener(heads.append)
    with catalog.write() as tx:
        tx.record("scope", "thing", "4", "upsert", 1)
    assert len(heads) == 1


def test_listener_runs_after_commit_is_visible(catalog: Catalog, catalog_url: str) -> None:
    other = Catalog.open(catalog_url)
    seen: list[list[int]] = []

    def listener(head: int) -> None:
        # Another connection must already see the committed changes up to `head`.
        seen.append([c["seq"] for c in other.changes_since(head - 1)])

    catalog.add_commit_listener(listener)
    try:
        with catalog.write() as tx:
            tx.record("scope", "thing", "1", "upsert", 1)
        assert seen == [[tx.head]]
    finally:
        catalog.remove_commit_listener(listener)
        other.close()


def test_failing_listener_does_not_undo_the_write(catalog: Catalog) -> None:
    calls: list[int] = []

    def bad(head: int) -> None:
        raise RuntimeError("listener bug")

    catalog.add_commit_listener(bad)
    catalog.add_commit_listener(calls.append)
    with catalog.write() as tx:
        tx.record("scope", "thing", "1", "upsert", 1)
    assert calls == [tx.head]
    with catalog.read() as conn:
        seq = conn.execute(select(schema.changes.c.seq).where(schema.changes.c.entity_id == "1"))
        assert seq.scalar_one() == tx.head
