"""The folder scan cache: `(storage dir, relative path) → size, mtime_ns, inode, hash | error`.

A file whose `(size, mtime_ns, inode)` still match its row is not read again. Errors are kept in
the same row (hash NULL) so `inspect` can show them and the next scan retries them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.engine import Connection

from gallerysync.catalog import schema
from gallerysync.catalog.db import WriteTx, like_escape
from gallerysync.domain import now_ms

__all__ = [
    "CacheEntry",
    "cache_errors",
    "cached_paths_under",
    "delete_entries",
    "find_by_hash",
    "find_by_name",
    "load_cache",
    "load_known_stats",
    "sample_cached_paths",
    "stat_signature",
    "upsert_entries",
]


@dataclass(frozen=True, slots=True)
class CacheEntry:
    rel_path: str
    size: int
    mtime_ns: int
    inode: int
    hash: str | None
    error: str | None


def load_cache(conn: Connection, sd_id: str) -> dict[str, tuple[int, int, int, str | None, bool]]:
    """All rows of one SD as `rel_path → (size, mtime_ns, inode, hash, has_error)`."""
    rows = _raw_rows(
        conn,
        "SELECT rel_path, size, mtime_ns, inode, hash, error IS NOT NULL FROM scan_cache "
        "WHERE sd_id = {p}",
        sd_id,
    )
    return {row[0]: (row[1], row[2], row[3], row[4], bool(row[5])) for row in rows}


def stat_signature(size: int, mtime_ns: int, inode: int) -> int:
    """One integer for a file's stat. Python hashes tuples of ints the same way in every
    process (no hash randomisation for ints), so it can be stored and compared later; should a
    future Python hash differently, every file is simply re-hashed once."""
    return hash((size, mtime_ns, inode))


def load_known_stats(conn: Connection, sd_id: str) -> dict[str, int | None]:
    """`rel_path → stat signature` for a walk to compare against (None: retry this file).

    Read through the driver's own cursor into `dict()`: on a rescan of 100,000 files this is
    most of the database time, and row objects would triple it.
    """
    return dict(
        _raw_rows(conn, "SELECT rel_path, stat_sig FROM scan_cache WHERE sd_id = {p}", sd_id)
    )


def _raw_rows(conn: Connection, sql: str, sd_id: str) -> list[Any]:
    marker = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql.format(p=marker), (sd_id,))
        return list(cursor.fetchall())
    finally:
        cursor.close()


_CACHE_COLUMNS = (
    "sd_id",
    "rel_path",
    "size",
    "mtime_ns",
    "inode",
    "stat_sig",
    "hash",
    "error",
    "seen_at",
)
_CACHE_UPSERT = "ON CONFLICT (sd_id, rel_path) DO UPDATE SET " + ", ".join(
    f"{c} = excluded.{c}" for c in _CACHE_COLUMNS[2:]
)


def upsert_entries(tx: WriteTx, sd_id: str, entries: Sequence[CacheEntry]) -> None:
    if not entries:
        return
    now = now_ms()
    rows = [
        (
            sd_id,
            e.rel_path,
            e.size,
            e.mtime_ns,
            e.inode,
            stat_signature(e.size, e.mtime_ns, e.inode)
            if e.hash is not None and e.error is None
            else None,
            e.hash,
            e.error,
            now,
        )
        for e in entries
    ]
    tx.insert_many("scan_cache", _CACHE_COLUMNS, rows, on_conflict=_CACHE_UPSERT)


def delete_entries(tx: WriteTx, sd_id: str, rel_paths: Sequence[str]) -> None:
    t = schema.scan_cache
    for start in range(0, len(rel_paths), 500):
        chunk = rel_paths[start : start + 500]
        tx.conn.execute(delete(t).where(t.c.sd_id == sd_id, t.c.rel_path.in_(chunk)))


def cached_paths_under(conn: Connection, sd_id: str, rel_paths: Sequence[str]) -> set[str]:
    """The cached paths equal to, or below, each of `rel_paths` (a watcher batch touches a
    handful of paths; loading the whole cache of a 100,000-file dir for it would not do)."""
    t = schema.scan_cache
    found: set[str] = set()
    for start in range(0, len(rel_paths), 100):
        conditions = [
            or_(
                t.c.rel_path == rel,
                t.c.rel_path.like(like_escape(rel.rstrip("/")) + "/%", escape="\\"),
            )
            for rel in rel_paths[start : start + 100]
        ]
        rows = conn.execute(select(t.c.rel_path).where(t.c.sd_id == sd_id, or_(*conditions)))
        found.update(r[0] for r in rows)
    return found


def sample_cached_paths(conn: Connection, sd_id: str, limit: int) -> list[str]:
    t = schema.scan_cache
    rows = conn.execute(select(t.c.rel_path).where(t.c.sd_id == sd_id).limit(limit))
    return [r[0] for r in rows]


def find_by_hash(conn: Connection, file_hash: str) -> list[tuple[str, str]]:
    """Every `(sd_id, rel_path)` whose last scan saw these bytes."""
    t = schema.scan_cache
    rows = conn.execute(select(t.c.sd_id, t.c.rel_path).where(t.c.hash == file_hash))
    return [(r[0], r[1]) for r in rows]


def find_by_name(conn: Connection, name: str) -> list[tuple[str, str, str | None]]:
    """Every `(sd_id, rel_path, hash)` whose file name is `name` (any folder)."""
    t = schema.scan_cache
    rows = conn.execute(
        select(t.c.sd_id, t.c.rel_path, t.c.hash).where(
            or_(t.c.rel_path == name, t.c.rel_path.like("%/" + like_escape(name), escape="\\"))
        )
    )
    return [(r[0], r[1], r[2]) for r in rows]


def cache_errors(conn: Connection, sd_id: str) -> list[tuple[str, str]]:
    t = schema.scan_cache
    rows = conn.execute(
        select(t.c.rel_path, t.c.error)
        .where(t.c.sd_id == sd_id, t.c.error.is_not(None))
        .order_by(t.c.rel_path)
    )
    return [(r[0], r[1]) for r in rows]


def cache_counts(conn: Connection, sd_id: str) -> tuple[int, int]:
    """`(rows with a hash, rows with an error)` for one SD."""
    t = schema.scan_cache
    hashed = conn.execute(
        select(func.count()).where(t.c.sd_id == sd_id, t.c.hash.is_not(None))
    ).scalar_one()
    errored = conn.execute(
        select(func.count()).where(t.c.sd_id == sd_id, t.c.error.is_not(None))
    ).scalar_one()
    return int(hashed), int(errored)
