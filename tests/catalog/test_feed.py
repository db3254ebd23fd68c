"""Reading the change feed: tokens, pages that prove coverage, scopes, compaction, resets."""

from __future__ import annotations

import pytest

from gallerysync.catalog import Catalog
from gallerysync.catalog.assets import insert_asset
from gallerysync.catalog.feed import (
    FeedResetError,
    compact,
    decode_token,
    encode_token,
    read_page,
)
from gallerysync.catalog.sources import create_source, find_source, remove_source
from gallerysync.domain import new_id
from gallerysync.errors import InvalidInputError
from tests.catalog.support import fake_hash


def _asset(catalog: Catalog, owner: str | None = None) -> str:
    asset_id = new_id()
    with catalog.write() as tx:
        insert_asset(
            tx,
            {
                "id": asset_id,
                "owner_id": owner or catalog.default_owner_id,
                "hash": fake_hash(),
                "kind": "image",
            },
        )
    return asset_id


def _source(catalog: Catalog, name: str) -> str:
    with catalog.write() as tx:
        return create_source(
            tx,
            source_id=new_id(),
            kind="folder",
            name=name,
            owner_id=catalog.default_owner_id,
            options={},
        ).id


def test_tokens_round_trip_and_refuse_other_catalogs(catalog: Catalog) -> None:
    token = encode_token(catalog.instance_id, catalog.epoch, 42)
    assert len(token) == 19 and decode_token(token, catalog) == 42
    with pytest.raises(FeedResetError):
        decode_token(encode_token(catalog.instance_id, "another-epoch", 42), catalog)
    with pytest.raises(FeedResetError):
        decode_token(encode_token("another-instance", catalog.epoch, 42), catalog)
    for bad in ("", "x" * 19, "not a token", "A" * 400):
        with pytest.raises((InvalidInputError, FeedResetError)):
            decode_token(bad, catalog)


def test_pages_cover_ranges_and_end_up_to_date(catalog: Catalog) -> None:
    start = catalog.head()
    ids = [_asset(catalog) for _ in range(7)]
    seen: list[str] = []
    cursor = start
    covered = []
    while True:
        with catalog.read() as conn:
            page = read_page(conn, scope=None, since=cursor, limit=3)
        covered.append((page.covers_from, page.covers_to))
        seen += [c["id"] for c in page.changes]
        cursor = page.covers_to
        if page.up_to_date:
            break
    assert seen == ids
    assert covered == [(start, start + 3), (start + 3, start + 6), (start + 6, start + 7)]
    assert all(c["data"]["kind"] == "image" for c in page.changes)


def test_other_owners_are_hidden_but_covered(catalog: Catalog) -> None:
    from sqlalchemy import insert

    from gallerysync.catalog import schema
    from gallerysync.domain import now_ms

    other = new_id()
    with catalog.write() as tx:
        tx.conn.execute(insert(schema.users).values(id=other, name="other", created_at=now_ms()))
    start = catalog.head()
    mine = _asset(catalog)
    theirs = _asset(catalog, owner=other)
    with catalog.read() as conn:
        page = read_page(conn, scope=catalog.default_owner_id, since=start, limit=100)
    assert [c["id"] for c in page.changes] == [mine]
    assert theirs not in str(page.changes)
    assert page.hidden == [start + 2] and page.covers_to == start + 2


def test_compaction_keeps_latest_state_and_tombstone_expiry_forces_reset(
    catalog: Catalog,
) -> None:
    first = _source(catalog, "a")
    _source(catalog, "b")
    with catalog.write() as tx:
        remove_source(tx, find_source(tx.conn, "a"))
    removed = compact(catalog, tombstone_retention_ms=10**12)
    assert removed["superseded"] >= 1 and removed["expired_tombstones"] == 0
    with catalog.read() as conn:
        page = read_page(conn, scope=None, since=0, limit=100)
    by_id = {(c["type"], c["id"]): c for c in page.changes}
    assert by_id[("source", first)]["op"] == "delete" and by_id[("source", first)]["data"] is None
    assert len(page.changes) == len(by_id)  # one entry per entity after compaction

    removed = compact(catalog, tombstone_retention_ms=-1)  # every tombstone has expired
    assert removed["expired_tombstones"] == 1
    with catalog.read() as conn, pytest.raises(FeedResetError):
        read_page(conn, scope=None, since=0, limit=100)
    with catalog.read() as conn:
        assert read_page(conn, scope=None, since=catalog.head(), limit=10).up_to_date
