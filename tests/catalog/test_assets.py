"""Assets and origins: constraints, set-based lookups, status derivation, keyset pagination."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from gallerysync.catalog import Catalog, schema
from gallerysync.catalog.assets import (
    assets_by_hashes,
    count_assets,
    get_asset,
    insert_asset,
    insert_origin,
    list_assets,
    mark_origins_missing,
    origins_by_remote_ids,
    origins_of_assets,
    refresh_asset_status,
    repoint_origin,
    set_thumbnail,
)
from gallerysync.domain import Asset, AssetStatus, OriginStatus, new_id, now_ms
from gallerysync.errors import NotFoundError
from tests.catalog.support import add_asset, add_origin, all_changes, fake_hash, make_source

# More than two chunks of 500, and not a multiple of the chunk size.
MANY = 1_201


def _asset_values(catalog: Catalog, **values: Any) -> dict[str, Any]:
    return {
        "id": new_id(),
        "owner_id": catalog.default_owner_id,
        "hash": fake_hash(),
        "kind": "image",
        **values,
    }


def _origin_values(source_id: str, asset_id: str, remote_id: str) -> dict[str, Any]:
    return {"id": new_id(), "source_id": source_id, "remote_id": remote_id, "asset_id": asset_id}


def test_insert_asset_and_origin_roundtrip(catalog: Catalog) -> None:
    source = make_source(catalog)
    blob_hash = fake_hash()
    asset_id = add_asset(
        catalog, hash=blob_hash, format="jpeg", mime="image/jpeg", width=32, height=24, size=99
    )
    origin = add_origin(catalog, source, asset_id, "dir/a.jpg")
    with catalog.read() as conn:
        asset = get_asset(conn, asset_id)
    assert asset.owner_id == catalog.default_owner_id
    assert asset.hash == blob_hash
    assert asset.status == AssetStatus.PRESENT
    assert (asset.kind, asset.format, asset.width, asset.height, asset.size) == (
        "image",
        "jpeg",
        32,
        24,
        99,
    )
    assert asset.version == 1
    assert asset.thumb_hash is None
    assert asset.created_at == asset.updated_at > 0
    assert asset.origins == (origin,)
    assert origin.source_id == source.id
    assert origin.asset_id == asset_id
    assert origin.remote_id == "dir/a.jpg"
    assert origin.status == OriginStatus.PRESENT
    assert origin.version == 1
    assert origin.first_seen_at == origin.last_seen_at > 0


def test_get_asset_unknown(catalog: Catalog) -> None:
    with catalog.read() as conn, pytest.raises(NotFoundError):
        get_asset(conn, new_id())


def test_origin_remote_id_unique_per_source(catalog: Catalog) -> None:
    first = make_source(catalog)
    second = make_source(catalog)
    asset_id = add_asset(catalog)
    add_origin(catalog, first, asset_id, "same.jpg")
    add_origin(catalog, second, asset_id, "same.jpg")  # another source: fine
    other_asset = add_asset(catalog)
    with pytest.raises(IntegrityError), catalog.write() as tx:
        insert_origin(tx, first.owner_id, _origin_values(first.id, other_asset, "same.jpg"))
    with catalog.read() as conn:
        assert len(origins_of_assets(conn, [asset_id])[asset_id]) == 2
        assert origins_of_assets(conn, [other_asset]) == {}


def test_asset_hash_unique_per_owner(catalog: Catalog) -> None:
    blob_hash = fake_hash()
    add_asset(catalog, hash=blob_hash)
    with pytest.raises(IntegrityError), catalog.write() as tx:
        insert_asset(tx, _asset_values(catalog, hash=blob_hash))

    # Another owner may hold the same bytes; unhashed assets never collide.
    other_owner = new_id()
    with catalog.write() as tx:
        tx.conn.execute(
            insert(schema.users).values(id=other_owner, name="someone", created_at=now_ms())
        )
        insert_asset(tx, _asset_values(catalog, owner_id=other_owner, hash=blob_hash))
        insert_asset(tx, _asset_values(catalog, hash=None))
        insert_asset(tx, _asset_values(catalog, hash=None))
    with catalog.read() as conn:
        assert count_assets(conn) == 4
        mine = assets_by_hashes(conn, catalog.default_owner_id, [blob_hash])
        theirs = assets_by_hashes(conn, other_owner, [blob_hash])
    assert mine[blob_hash].owner_id == catalog.default_owner_id
    assert theirs[blob_hash].owner_id == other_owner


def test_asset_owner_must_exist(catalog: Catalog) -> None:
    with pytest.raises(IntegrityError), catalog.write() as tx:
        insert_asset(tx, _asset_values(catalog, owner_id=new_id()))


def test_origin_needs_existing_source_and_asset(catalog: Catalog) -> None:
    source = make_source(catalog)
    with pytest.raises(IntegrityError), catalog.write() as tx:
        insert_origin(tx, source.owner_id, _origin_values(source.id, new_id(), "x.jpg"))
    asset_id = add_asset(catalog)
    with pytest.raises(IntegrityError), catalog.write() as tx:
        insert_origin(tx, source.owner_id, _origin_values(new_id(), asset_id, "x.jpg"))


def test_set_based_lookups_span_chunks(catalog: Catalog) -> None:
    source = make_source(catalog)
    other = make_source(catalog)
    hashes = [fake_hash() for _ in range(MANY)]
    asset_ids = [new_id() for _ in range(MANY)]
    remote_ids = [f"dir/{i:05d}.jpg" for i in range(MANY)]
    with catalog.write() as tx:
        for asset_id, blob_hash in zip(asset_ids, hashes, strict=True):
            insert_asset(tx, _asset_values(catalog, id=asset_id, hash=blob_hash))
        for i, (asset_id, remote_id) in enumerate(zip(asset_ids, remote_ids, strict=True)):
            insert_origin(tx, source.owner_id, _origin_values(source.id, asset_id, remote_id))
            if i % 100 == 0:  # some assets have a second origin
                insert_origin(
                    tx, source.owner_id, _origin_values(source.id, asset_id, remote_id + ".2")
                )
    unknown = [f"nope/{i}" for i in range(50)]
    with catalog.read() as conn:
        by_remote = origins_by_remote_ids(conn, source.id, [*remote_ids, *unknown])
        by_hash = assets_by_hashes(conn, catalog.default_owner_id, [*hashes, fake_hash()])
        by_asset = origins_of_assets(conn, [*asset_ids, new_id()])
        elsewhere = origins_by_remote_ids(conn, other.id, remote_ids)
    assert set(by_remote) == set(remote_ids)
    assert all(o.remote_id == r and o.source_id == source.id for r, o in by_remote.items())
    assert [by_remote[r].asset_id for r in remote_ids] == asset_ids
    assert set(by_hash) == set(hashes)
    assert [by_hash[h].id for h in hashes] == asset_ids
    assert set(by_asset) == set(asset_ids)
    assert sum(len(v) for v in by_asset.values()) == MANY + len(range(0, MANY, 100))
    assert all(len(by_asset[a]) == (2 if i % 100 == 0 else 1) for i, a in enumerate(asset_ids))
    assert elsewhere == {}


def test_lookups_with_empty_input(catalog: Catalog) -> None:
    with catalog.read() as conn:
        assert origins_by_remote_ids(conn, new_id(), []) == {}
        assert assets_by_hashes(conn, catalog.default_owner_id, []) == {}
        assert origins_of_assets(conn, []) == {}
    with catalog.write() as tx:
        assert mark_origins_missing(tx, "scope", []) == set()
        assert refresh_asset_status(tx, []) == 0
    assert tx.head is None


def test_missing_and_back_via_repoint(catalog: Catalog) -> None:
    source = make_source(catalog)
    asset_id = add_asset(catalog)
    origin = add_origin(catalog, source, asset_id, "a.jpg")

    # Origin helpers log nothing themselves: the asset's refresh logs the asset.
    before = catalog.head()
    with catalog.write() as tx:
        affected = mark_origins_missing(tx, source.owner_id, [origin])
        assert affected == {asset_id}
        assert refresh_asset_status(tx, affected) == 1
    with catalog.read() as conn:
        asset = get_asset(conn, asset_id)
    assert asset.status == AssetStatus.MISSING
    assert asset.version == 2
    (missing_origin,) = asset.origins
    assert missing_origin.status == OriginStatus.MISSING
    assert missing_origin.version == 2
    logged = [
        (c["entity_type"], c["entity_id"], c["op"], c["version"])
        for c in catalog.changes_since(before)
    ]
    assert logged == [("asset", asset_id, "upsert", 2)]

    # Marking an already-missing origin again changes and logs nothing.
    before = catalog.head()
    with catalog.write() as tx:
        assert mark_origins_missing(tx, source.owner_id, [missing_origin]) == set()
    assert tx.head is None
    assert catalog.head() == before

    # A refresh always bumps and logs the asset, even when its status stays the same.
    with catalog.write() as tx:
        assert refresh_asset_status(tx, [asset_id]) == 0  # already missing: not newly missing
    with catalog.read() as conn:
        asset = get_asset(conn, asset_id)
    assert (asset.status, asset.version) == (AssetStatus.MISSING, 3)
    assert asset.origins == (missing_origin,)  # the origin itself is untouched
    logged = [
        (c["entity_type"], c["entity_id"], c["op"], c["version"])
        for c in catalog.changes_since(before)
    ]
    assert logged == [("asset", asset_id, "upsert", 3)]

    before = catalog.head()
    with catalog.write() as tx:
        repoint_origin(tx, source.owner_id, missing_origin, {"path": "moved/a.jpg", "size": 11})
        assert refresh_asset_status(tx, [asset_id]) == 0  # became present, not missing
    with catalog.read() as conn:
        asset = get_asset(conn, asset_id)
    assert asset.status == AssetStatus.PRESENT
    assert asset.version == 4
    (back,) = asset.origins
    assert (back.status, back.version, back.path, back.size) == (
        OriginStatus.PRESENT,
        3,
        "moved/a.jpg",
        11,
    )
    assert back.last_seen_at >= missing_origin.last_seen_at
    logged = [
        (c["entity_type"], c["entity_id"], c["op"], c["version"])
        for c in catalog.changes_since(before)
    ]
    assert logged == [("asset", asset_id, "upsert", 4)]
    assert catalog.head() == before + 1
    assert all(c["entity_type"] != "origin" for c in all_changes(catalog))


def test_asset_stays_present_while_any_origin_is(catalog: Catalog) -> None:
    first = make_source(catalog)
    second = make_source(catalog)
    asset_id = add_asset(catalog)
    o1 = add_origin(catalog, first, asset_id, "a.jpg")
    o2 = add_origin(catalog, second, asset_id, "a.jpg")
    with catalog.write() as tx:
        assert refresh_asset_status(tx, mark_origins_missing(tx, "s", [o1])) == 0
    with catalog.read() as conn:
        assert get_asset(conn, asset_id).status == AssetStatus.PRESENT
    with catalog.write() as tx:
        assert refresh_asset_status(tx, mark_origins_missing(tx, "s", [o2])) == 1
    with catalog.read() as conn:
        assert get_asset(conn, asset_id).status == AssetStatus.MISSING


def test_refresh_many_assets_across_chunks(catalog: Catalog) -> None:
    source = make_source(catalog)
    asset_ids = [new_id() for _ in range(MANY)]
    with catalog.write() as tx:
        for i, asset_id in enumerate(asset_ids):
            insert_asset(tx, _asset_values(catalog, id=asset_id))
            insert_origin(tx, "s", _origin_values(source.id, asset_id, f"{i}.jpg"))
    with catalog.read() as conn:
        all_origins = origins_by_remote_ids(conn, source.id, [f"{i}.jpg" for i in range(MANY)])
    assert len(all_origins) == MANY
    with catalog.write() as tx:
        affected = mark_origins_missing(tx, "s", list(all_origins.values()))
        assert affected == set(asset_ids)
        assert refresh_asset_status(tx, affected) == MANY
    with catalog.read() as conn:
        assert count_assets(conn, AssetStatus.MISSING) == MANY
        assert count_assets(conn, AssetStatus.PRESENT) == 0


def test_set_thumbnail_bumps_version(catalog: Catalog) -> None:
    asset_id = add_asset(catalog)
    thumb = fake_hash()
    before = catalog.head()
    with catalog.write() as tx:
        set_thumbnail(tx, asset_id, thumb)
    with catalog.read() as conn:
        asset = get_asset(conn, asset_id)
    assert (asset.thumb_hash, asset.version) == (thumb, 2)
    assert [(c["entity_id"], c["version"]) for c in catalog.changes_since(before)] == [
        (asset_id, 2)
    ]
    with pytest.raises(NotFoundError), catalog.write() as tx:
        set_thumbnail(tx, new_id(), thumb)


def _page_through(catalog: Catalog, limit: int, **filters: Any) -> list[Asset]:
    seen: list[Asset] = []
    before: tuple[int, str] | None = None
    with catalog.read() as conn:
        while True:
            page = list_assets(conn, limit=limit, before=before, **filters)
            assert len(page) <= limit
            if not page:
                return seen
            seen.extend(page)
            before = (page[-1].created_at, page[-1].id)


def test_list_assets_keyset_pagination(catalog: Catalog) -> None:
    # Many assets share a created_at so the id tie-break is exercised.
    ids: list[str] = []
    for i in range(23):
        ids.append(add_asset(catalog, created_at=1_000 + (i // 5), updated_at=1))
    for limit in (1, 4, 5, 7, 100):
        pages = _page_through(catalog, limit)
        assert [a.id for a in pages] == sorted(
            ids, key=lambda a: (1_000 + ids.index(a) // 5, a), reverse=True
        )
        assert len({a.id for a in pages}) == len(ids)
        keys = [(a.created_at, a.id) for a in pages]
        assert keys == sorted(keys, reverse=True)


def test_list_assets_filters(catalog: Catalog) -> None:
    first = make_source(catalog)
    second = make_source(catalog)
    in_first = [add_asset(catalog, created_at=10 + i) for i in range(6)]
    in_second = [add_asset(catalog, created_at=20 + i) for i in range(4)]
    in_both = add_asset(catalog, created_at=30)
    orphan_missing = add_asset(catalog, created_at=40, status=AssetStatus.MISSING.value)
    for i, asset_id in enumerate(in_first):
        add_origin(catalog, first, asset_id, f"{i}.jpg")
    for i, asset_id in enumerate(in_second):
        add_origin(catalog, second, asset_id, f"{i}.jpg")
    add_origin(catalog, first, in_both, "both.jpg")
    add_origin(catalog, second, in_both, "both.jpg")
    # Make two of the first source's assets missing.
    with catalog.read() as conn:
        lost = origins_by_remote_ids(conn, first.id, ["0.jpg", "1.jpg"])
    with catalog.write() as tx:
        refresh_asset_status(tx, mark_origins_missing(tx, "s", list(lost.values())))

    def ids(**filters: Any) -> list[str]:
        return [a.id for a in _page_through(catalog, 3, **filters)]

    assert ids() == [orphan_missing, in_both, *reversed(in_second), *reversed(in_first)]
    assert ids(source_id=first.id) == [in_both, *reversed(in_first)]
    assert ids(source_id=second.id) == [in_both, *reversed(in_second)]
    assert ids(status="missing") == [orphan_missing, in_first[1], in_first[0]]
    assert ids(status="present", source_id=first.id) == [in_both, *reversed(in_first[2:])]
    assert ids(source_id=new_id()) == []
    with catalog.read() as conn:
        page = list_assets(conn, source_id=first.id, limit=1)
        assert len(page) == 1
        assert {o.source_id for o in page[0].origins} == {first.id, second.id}
        assert count_assets(conn) == 12
        assert count_assets(conn, "missing") == 3
