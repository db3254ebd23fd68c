"""The folder scan cache."""

from __future__ import annotations

from sqlalchemy import select

from gallerysync.catalog import Catalog, schema
from gallerysync.catalog.scan_cache import (
    CacheEntry,
    cache_counts,
    cache_errors,
    delete_entries,
    find_by_hash,
    find_by_name,
    load_cache,
    upsert_entries,
)
from tests.catalog.support import fake_hash, make_source


def test_upsert_inserts_then_updates(catalog: Catalog) -> None:
    sd = make_source(catalog).id
    h1, h2 = fake_hash(), fake_hash()
    with catalog.write() as tx:
        upsert_entries(
            tx,
            sd,
            [CacheEntry("a.jpg", 10, 111, 5, h1, None), CacheEntry("b.jpg", 20, 222, 6, h2, None)],
        )
    with catalog.read() as conn:
        assert load_cache(conn, sd) == {
            "a.jpg": (10, 111, 5, h1, False),
            "b.jpg": (20, 222, 6, h2, False),
        }
    # Same keys again: updated in place (no duplicate-key error), other rows untouched.
    with catalog.write() as tx:
        upsert_entries(
            tx,
            sd,
            [
                CacheEntry("a.jpg", 11, 333, 7, None, "permission denied"),
                CacheEntry("c.jpg", 30, 444, 8, h1, None),
            ],
        )
    with catalog.read() as conn:
        cache = load_cache(conn, sd)
        rows = conn.execute(select(schema.scan_cache.c.rel_path)).scalars().all()
    assert cache == {
        "a.jpg": (11, 333, 7, None, True),
        "b.jpg": (20, 222, 6, h2, False),
        "c.jpg": (30, 444, 8, h1, False),
    }
    assert sorted(rows) == ["a.jpg", "b.jpg", "c.jpg"]
    # An error row becomes a hash row again once the file reads fine.
    with catalog.write() as tx:
        upsert_entries(tx, sd, [CacheEntry("a.jpg", 11, 333, 7, h2, None)])
    with catalog.read() as conn:
        assert load_cache(conn, sd)["a.jpg"] == (11, 333, 7, h2, False)


def test_upsert_updates_seen_at(catalog: Catalog) -> None:
    sd = make_source(catalog).id
    with catalog.write() as tx:
        upsert_entries(tx, sd, [CacheEntry("a.jpg", 1, 1, 1, "h", None)])
    with catalog.write() as tx:
        tx.conn.execute(schema.scan_cache.update().values(seen_at=0))
        upsert_entries(tx, sd, [CacheEntry("a.jpg", 1, 1, 1, "h", None)])
    with catalog.read() as conn:
        assert conn.execute(select(schema.scan_cache.c.seen_at)).scalar_one() > 0


def test_load_cache_tuple_shape_and_isolation(catalog: Catalog) -> None:
    sd1 = make_source(catalog).id
    sd2 = make_source(catalog).id
    sd3 = make_source(catalog).id
    big = 2**40  # sizes, mtimes and inodes are 64-bit
    with catalog.write() as tx:
        upsert_entries(tx, sd1, [CacheEntry("x/y.png", big, big * 1000, big + 1, "h", None)])
        upsert_entries(tx, sd2, [CacheEntry("x/y.png", 1, 2, 3, None, "boom")])
        upsert_entries(tx, sd2, [])  # nothing to do
    with catalog.read() as conn:
        one = load_cache(conn, sd1)
        two = load_cache(conn, sd2)
        assert load_cache(conn, sd3) == {}
    assert one == {"x/y.png": (big, big * 1000, big + 1, "h", False)}
    assert two == {"x/y.png": (1, 2, 3, None, True)}
    (value,) = one.values()
    assert type(value) is tuple
    assert [type(v) for v in value] == [int, int, int, str, bool]


def test_delete_entries(catalog: Catalog) -> None:
    sd = make_source(catalog).id
    other = make_source(catalog).id
    paths = [f"d/{i:04d}.jpg" for i in range(1_203)]
    with catalog.write() as tx:
        upsert_entries(tx, sd, [CacheEntry(p, 1, 1, i, None, None) for i, p in enumerate(paths)])
        upsert_entries(tx, other, [CacheEntry(paths[0], 1, 1, 1, None, None)])
    doomed = paths[::2]
    with catalog.write() as tx:
        delete_entries(tx, sd, [*doomed, "not/there.jpg"])
        delete_entries(tx, sd, [])
    with catalog.read() as conn:
        assert sorted(load_cache(conn, sd)) == paths[1::2]
        assert list(load_cache(conn, other)) == [paths[0]]  # other SD untouched


def test_find_by_hash(catalog: Catalog) -> None:
    sd1 = make_source(catalog).id
    sd2 = make_source(catalog).id
    h, other = fake_hash(), fake_hash()
    with catalog.write() as tx:
        upsert_entries(
            tx,
            sd1,
            [CacheEntry("a.jpg", 1, 1, 1, h, None), CacheEntry("b.jpg", 1, 1, 2, other, None)],
        )
        upsert_entries(tx, sd2, [CacheEntry("copy/a.jpg", 1, 1, 1, h, None)])
    with catalog.read() as conn:
        assert sorted(find_by_hash(conn, h)) == sorted([(sd1, "a.jpg"), (sd2, "copy/a.jpg")])
        assert find_by_hash(conn, other) == [(sd1, "b.jpg")]
        assert find_by_hash(conn, fake_hash()) == []


def test_find_by_name_matches_whole_file_names(catalog: Catalog) -> None:
    sd = make_source(catalog).id
    paths = ["a.jpg", "x/a.jpg", "x/y/a.jpg", "x/ba.jpg", "a.jpg/z.jpg", "xa.jpg"]
    with catalog.write() as tx:
        upsert_entries(tx, sd, [CacheEntry(p, 1, 1, i, p, None) for i, p in enumerate(paths)])
    with catalog.read() as conn:
        found = find_by_name(conn, "a.jpg")
    assert sorted(found) == sorted([(sd, p, p) for p in ("a.jpg", "x/a.jpg", "x/y/a.jpg")])


def test_find_by_name_treats_wildcards_literally(catalog: Catalog) -> None:
    sd = make_source(catalog).id
    paths = [
        "100%.jpg",
        "d/100%.jpg",
        "d/100x.jpg",
        "d/100.jpg",
        "d/1005%.jpg",
        "a_b.jpg",
        "d/a_b.jpg",
        "d/axb.jpg",
        "d/ab.jpg",
        "d/back\\slash.jpg",
        "d/backxslash.jpg",
    ]
    with catalog.write() as tx:
        upsert_entries(tx, sd, [CacheEntry(p, 1, 1, i, None, None) for i, p in enumerate(paths)])
    with catalog.read() as conn:

        def names(name: str) -> list[str]:
            return sorted(p for _, p, _ in find_by_name(conn, name))

        assert names("100%.jpg") == ["100%.jpg", "d/100%.jpg"]
        assert names("a_b.jpg") == ["a_b.jpg", "d/a_b.jpg"]
        assert names("back\\slash.jpg") == ["d/back\\slash.jpg"]
        assert names("%") == []
        assert names("_.jpg") == []
        assert names("nothing.jpg") == []


def test_cache_errors_and_counts(catalog: Catalog) -> None:
    sd = make_source(catalog).id
    other = make_source(catalog).id
    with catalog.write() as tx:
        upsert_entries(
            tx,
            sd,
            [
                CacheEntry("z.jpg", 1, 1, 1, None, "truncated"),
                CacheEntry("a.jpg", 1, 1, 2, None, "permission denied"),
                CacheEntry("ok.jpg", 1, 1, 3, "h", None),
                CacheEntry("pending.jpg", 1, 1, 4, None, None),
            ],
        )
        upsert_entries(tx, other, [CacheEntry("bad.jpg", 1, 1, 1, None, "nope")])
    with catalog.read() as conn:
        assert cache_errors(conn, sd) == [("a.jpg", "permission denied"), ("z.jpg", "truncated")]
        assert cache_errors(conn, other) == [("bad.jpg", "nope")]
        assert cache_counts(conn, sd) == (1, 2)
    with catalog.write() as tx:
        upsert_entries(tx, sd, [CacheEntry("z.jpg", 1, 1, 1, "fixed", None)])
    with catalog.read() as conn:
        assert cache_errors(conn, sd) == [("a.jpg", "permission denied")]
        assert cache_counts(conn, sd) == (2, 1)
