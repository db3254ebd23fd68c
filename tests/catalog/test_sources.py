"""Sources and storage dirs."""

from __future__ import annotations

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from gallerysync.catalog import Catalog, schema
from gallerysync.catalog.assets import get_asset
from gallerysync.catalog.runs import set_sync_state, start_run
from gallerysync.catalog.scan_cache import CacheEntry, load_cache, upsert_entries
from gallerysync.catalog.sources import (
    create_source,
    find_source,
    get_source,
    get_storage_dir,
    list_sources,
    list_storage_dirs,
    mark_scanned,
    remove_source,
    set_source_status,
    upsert_storage_dir,
)
from gallerysync.domain import AssetStatus, SourceStatus, new_id
from gallerysync.errors import ConflictError, NotFoundError
from tests.catalog.support import add_asset, add_origin, all_changes, make_source, row_count


def test_create_source_roundtrip_and_logs_change(catalog: Catalog) -> None:
    source_id = new_id()
    before = catalog.head()
    with catalog.write() as tx:
        created = create_source(
            tx,
            source_id=source_id,
            kind="folder",
            name="Photos",
            owner_id=catalog.default_owner_id,
            options={"root": "/data/photos", "follow": False},
        )
    assert created.id == source_id
    assert created.kind == "folder"
    assert created.name == "Photos"
    assert created.owner_id == catalog.default_owner_id
    assert created.options == {"root": "/data/photos", "follow": False}
    assert created.status == SourceStatus.OK
    assert created.status_detail == ""
    assert created.created_at > 0
    with catalog.read() as conn:
        assert get_source(conn, source_id) == created
    changes = catalog.changes_since(before)
    assert [(c["entity_type"], c["entity_id"], c["op"]) for c in changes] == [
        ("source", source_id, "upsert")
    ]


def test_duplicate_source_id_conflicts(catalog: Catalog) -> None:
    existing = make_source(catalog, name="first")
    before = catalog.head()
    with pytest.raises(ConflictError, match="first"), catalog.write() as tx:
        create_source(
            tx,
            source_id=existing.id,
            kind="folder",
            name="second",
            owner_id=catalog.default_owner_id,
            options={},
        )
    assert catalog.head() == before
    with catalog.read() as conn:
        assert [s.name for s in list_sources(conn)] == ["first"]


def test_duplicate_source_name_conflicts(catalog: Catalog) -> None:
    make_source(catalog, name="same")
    with pytest.raises(ConflictError, match="same"), catalog.write() as tx:
        create_source(
            tx,
            source_id=new_id(),
            kind="immich",
            name="same",
            owner_id=catalog.default_owner_id,
            options={},
        )
    assert row_count(catalog, schema.sources) == 1


def test_source_name_is_unique_in_the_database(catalog: Catalog) -> None:
    make_source(catalog, name="same")
    with pytest.raises(IntegrityError), catalog.write() as tx:
        tx.conn.execute(
            insert(schema.sources).values(
                id=new_id(),
                kind="folder",
                name="same",
                owner_id=catalog.default_owner_id,
                options="{}",
                status="ok",
                status_detail="",
                created_at=1,
                updated_at=1,
            )
        )


def test_find_source_by_name_or_id(catalog: Catalog) -> None:
    alpha = make_source(catalog, name="alpha")
    beta = make_source(catalog, name="beta")
    with catalog.read() as conn:
        assert find_source(conn, "alpha") == alpha
        assert find_source(conn, beta.id) == beta
        with pytest.raises(NotFoundError):
            find_source(conn, "gamma")
        with pytest.raises(NotFoundError):
            get_source(conn, new_id())


def test_find_source_prefers_name_over_id(catalog: Catalog) -> None:
    first = make_source(catalog, name="first")
    # A source whose *name* is another source's id: the name wins.
    tricky = make_source(catalog, name=first.id)
    with catalog.read() as conn:
        assert find_source(conn, first.id) == tricky
        assert find_source(conn, "first") == first


def test_list_sources_sorted_and_filtered(catalog: Catalog) -> None:
    make_source(catalog, name="zeta", kind="folder")
    make_source(catalog, name="alpha", kind="immich")
    make_source(catalog, name="mid", kind="folder")
    with catalog.read() as conn:
        assert [s.name for s in list_sources(conn)] == ["alpha", "mid", "zeta"]
        assert [s.name for s in list_sources(conn, kind="folder")] == ["mid", "zeta"]
        assert list_sources(conn, kind="nothing") == []


def test_set_source_status_logs_only_real_changes(catalog: Catalog) -> None:
    source = make_source(catalog)
    before = catalog.head()
    with catalog.write() as tx:
        assert set_source_status(tx, source, SourceStatus.OK, "") is False
    assert catalog.head() == before

    with catalog.write() as tx:
        assert set_source_status(tx, source, SourceStatus.OFFLINE, "root vanished") is True
    assert catalog.head() == before + 1
    with catalog.read() as conn:
        current = get_source(conn, source.id)
    assert (current.status, current.status_detail) == (SourceStatus.OFFLINE, "root vanished")

    with catalog.write() as tx:
        assert set_source_status(tx, source, SourceStatus.OFFLINE, "root vanished") is False
    assert catalog.head() == before + 1

    with catalog.write() as tx:  # only the detail differs: still a change
        assert set_source_status(tx, source, SourceStatus.OFFLINE, "root is empty") is True
    assert catalog.head() == before + 2
    assert [c["entity_id"] for c in catalog.changes_since(before)] == [source.id, source.id]


def test_set_source_status_compares_with_database_not_argument(catalog: Catalog) -> None:
    stale = make_source(catalog)
    with catalog.write() as tx:
        set_source_status(tx, stale, SourceStatus.ERROR, "boom")
    before = catalog.head()
    # `stale` still says OK; setting ERROR/boom again is not a change.
    with catalog.write() as tx:
        assert set_source_status(tx, stale, SourceStatus.ERROR, "boom") is False
    assert catalog.head() == before


def test_storage_dir_upsert_get_list_and_mark_scanned(catalog: Catalog) -> None:
    source = make_source(catalog)
    with catalog.read() as conn, pytest.raises(NotFoundError):
        get_storage_dir(conn, source.id)
    with catalog.write() as tx:
        upsert_storage_dir(
            tx, source_id=source.id, root="/a", id_file_status="ok", alias_id=None, detail=""
        )
    with catalog.read() as conn:
        sd = get_storage_dir(conn, source.id)
    assert (sd.root, sd.id_file_status, sd.alias_id, sd.detail, sd.last_scan_at) == (
        "/a",
        "ok",
        None,
        "",
        None,
    )
    alias = new_id()
    with catalog.write() as tx:
        upsert_storage_dir(
            tx,
            source_id=source.id,
            root="/b",
            id_file_status="migrated",
            alias_id=alias,
            detail="moved",
            scanned=True,
        )
    with catalog.read() as conn:
        sd = get_storage_dir(conn, source.id)
        assert list_storage_dirs(conn) == [sd]
    assert (sd.root, sd.id_file_status, sd.alias_id, sd.detail) == (
        "/b",
        "migrated",
        alias,
        "moved",
    )
    assert sd.last_scan_at is not None
    first_scan = sd.last_scan_at

    other = make_source(catalog)
    with catalog.write() as tx:
        upsert_storage_dir(
            tx, source_id=other.id, root="/c", id_file_status="ok", alias_id=None, detail=""
        )
        mark_scanned(tx, other.id)
    with catalog.read() as conn:
        assert get_storage_dir(conn, other.id).last_scan_at is not None
        assert get_storage_dir(conn, source.id).last_scan_at == first_scan
        assert {d.source_id for d in list_storage_dirs(conn)} == {source.id, other.id}


def test_remove_source_cleans_up_and_marks_orphaned_assets_missing(catalog: Catalog) -> None:
    doomed = make_source(catalog, name="doomed")
    kept = make_source(catalog, name="kept")
    only_here = add_asset(catalog)
    shared = add_asset(catalog)
    add_origin(catalog, doomed, only_here, "a.jpg")
    add_origin(catalog, doomed, shared, "b.jpg")
    o3 = add_origin(catalog, kept, shared, "b.jpg")
    with catalog.write() as tx:
        upsert_storage_dir(
            tx, source_id=doomed.id, root="/d", id_file_status="ok", alias_id=None, detail=""
        )
        upsert_entries(tx, doomed.id, [CacheEntry("a.jpg", 1, 1, 1, "h", None)])
        upsert_entries(tx, kept.id, [CacheEntry("b.jpg", 1, 1, 1, "h", None)])
    set_sync_state(catalog, doomed.id, "asset", "cursor", 3)
    doomed_run = start_run(catalog, doomed.id, "full")
    start_run(catalog, kept.id, "full")
    before = catalog.head()

    with catalog.write() as tx:
        went_missing = remove_source(tx, doomed)
    assert went_missing == 1

    with catalog.read() as conn:
        with pytest.raises(NotFoundError):
            get_source(conn, doomed.id)
        with pytest.raises(NotFoundError):
            get_storage_dir(conn, doomed.id)
        assert load_cache(conn, doomed.id) == {}
        assert list(load_cache(conn, kept.id)) == ["b.jpg"]
        lonely = get_asset(conn, only_here)
        both = get_asset(conn, shared)
    assert lonely.status == AssetStatus.MISSING
    assert lonely.origins == ()
    assert lonely.version == 2
    assert both.status == AssetStatus.PRESENT
    assert [o.id for o in both.origins] == [o3.id]
    assert row_count(catalog, schema.origins, schema.origins.c.source_id == doomed.id) == 0
    assert row_count(catalog, schema.sync_state, schema.sync_state.c.source_id == doomed.id) == 0
    assert row_count(catalog, schema.sync_runs, schema.sync_runs.c.source_id == doomed.id) == 0
    assert row_count(catalog, schema.sync_runs) == 1
    assert row_count(catalog, schema.assets) == 2  # assets are kept

    # No origin delete rows: both assets that lost an origin are logged at their bumped
    # version, the shared one too although it stays present.
    assert both.version == 2
    logged = [
        (c["entity_type"], c["entity_id"], c["op"], c["version"])
        for c in catalog.changes_since(before)
    ]
    assert logged[:2] == [
        ("sync_run", doomed_run, "delete", 0),  # its runs go too, as tombstones
        ("source", doomed.id, "delete", 0),
    ]
    assert sorted(logged[2:]) == sorted(
        [("asset", only_here, "upsert", 2), ("asset", shared, "upsert", 2)]
    )
    assert catalog.head() == before + 4
    assert all(c["entity_type"] != "origin" for c in all_changes(catalog))
    seqs = [c["seq"] for c in all_changes(catalog)]
    assert seqs == list(range(1, catalog.head() + 1))


def test_remove_source_without_origins(catalog: Catalog) -> None:
    source = make_source(catalog)
    with catalog.write() as tx:
        assert remove_source(tx, source) == 0
    with catalog.read() as conn:
        assert list_sources(conn) == []
