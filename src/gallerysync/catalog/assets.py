"""Assets and origins: set-based primitives for sync, and queries for the CLI and API.

Set-based because a scan registers thousands of files per transaction: one `IN (…)` select and
one `executemany` per batch instead of a round trip per file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.engine import Connection, RowMapping

from gallerysync.catalog import schema
from gallerysync.catalog.db import WriteTx, like_escape
from gallerysync.catalog.organise import asset_labels
from gallerysync.domain import Asset, AssetStatus, Origin, OriginStatus, now_ms
from gallerysync.errors import NotFoundError

__all__ = [
    "asset_from_row",
    "asset_summaries",
    "assets_by_hashes",
    "count_assets",
    "find_asset_ids",
    "get_asset",
    "insert_asset",
    "insert_assets",
    "insert_origin",
    "insert_origins",
    "list_assets",
    "lock_owner_assets",
    "mark_origins_missing",
    "origins_by_remote_ids",
    "origins_of_assets",
    "refresh_asset_status",
    "repoint_origin",
    "set_thumbnail",
    "set_trashed",
]

_CHUNK = 500


def _chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def asset_from_row(row: RowMapping, origins: Sequence[Origin] = ()) -> Asset:
    return Asset(
        id=row["id"],
        owner_id=row["owner_id"],
        hash=row["hash"],
        status=AssetStatus(row["status"]),
        kind=row["kind"],
        format=row["format"],
        width=row["width"],
        height=row["height"],
        size=row["size"],
        thumb_hash=row["thumb_hash"],
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        origins=tuple(origins),
    )


def origin_from_row(row: RowMapping) -> Origin:
    return Origin(
        id=row["id"],
        source_id=row["source_id"],
        remote_id=row["remote_id"],
        asset_id=row["asset_id"],
        status=OriginStatus(row["status"]),
        path=row["path"],
        size=row["size"],
        mtime_ns=row["mtime_ns"],
        version=row["version"],
        first_seen_at=row["first_seen_at"],
        last_seen_at=row["last_seen_at"],
    )


def origins_by_remote_ids(
    conn: Connection, source_id: str, remote_ids: Sequence[str]
) -> dict[str, Origin]:
    found: dict[str, Origin] = {}
    table = schema.origins
    for chunk in _chunks(list(remote_ids)):
        rows = conn.execute(
            select(table).where(table.c.source_id == source_id, table.c.remote_id.in_(chunk))
        ).mappings()
        for row in rows:
            found[row["remote_id"]] = origin_from_row(row)
    return found


def assets_by_hashes(conn: Connection, owner_id: str, hashes: Sequence[str]) -> dict[str, Asset]:
    found: dict[str, Asset] = {}
    table = schema.assets
    for chunk in _chunks(list(hashes)):
        rows = conn.execute(
            select(table).where(table.c.owner_id == owner_id, table.c.hash.in_(chunk))
        ).mappings()
        for row in rows:
            found[row["hash"]] = asset_from_row(row)
    return found


def origins_of_assets(conn: Connection, asset_ids: Sequence[str]) -> dict[str, list[Origin]]:
    found: dict[str, list[Origin]] = {}
    table = schema.origins
    for chunk in _chunks(list(asset_ids)):
        rows = conn.execute(
            select(table).where(table.c.asset_id.in_(chunk)).order_by(table.c.first_seen_at)
        ).mappings()
        for row in rows:
            found.setdefault(row["asset_id"], []).append(origin_from_row(row))
    return found


_ASSET_COLUMNS = (
    "id",
    "owner_id",
    "hash",
    "status",
    "kind",
    "format",
    "mime",
    "width",
    "height",
    "size",
    "thumb_hash",
    "version",
    "created_at",
    "updated_at",
)
_ORIGIN_COLUMNS = (
    "id",
    "source_id",
    "remote_id",
    "asset_id",
    "status",
    "path",
    "size",
    "mtime_ns",
    "meta",
    "version",
    "first_seen_at",
    "last_seen_at",
    "remote_version",
    "fetch_status",
)


def lock_owner_assets(tx: WriteTx, owner_id: str) -> None:
    """Serialise asset creation for one owner until this transaction ends.

    Registration reads "is there an asset with this hash?" and then inserts one. SQLite's
    `BEGIN IMMEDIATE` already makes that atomic; on PostgreSQL (read committed) two processes
    registering the same bytes from different storage dirs would both insert, so they take a
    transaction-scoped advisory lock per owner first.
    """
    if tx.dialect == "postgresql":
        key = int.from_bytes(
            hashlib.blake2b(b"assets:" + owner_id.encode(), digest_size=8).digest(),
            "big",
            signed=True,
        )
        tx.conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({key})")


def insert_assets(tx: WriteTx, rows: Sequence[dict[str, Any]]) -> None:
    """Insert new assets in one `executemany` (each needs id, owner_id, hash, media fields)."""
    if not rows:
        return
    now = now_ms()
    defaults = {
        "status": AssetStatus.PRESENT.value,
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }
    tx.insert_many(
        "assets",
        _ASSET_COLUMNS,
        [tuple(row.get(c, defaults.get(c)) for c in _ASSET_COLUMNS) for row in rows],
    )
    for row in rows:
        tx.record(row["owner_id"], "asset", row["id"], "upsert", 1)


def insert_asset(tx: WriteTx, values: dict[str, Any]) -> None:
    insert_assets(tx, [values])


def insert_origins(tx: WriteTx, scope: str, rows: Sequence[dict[str, Any]]) -> None:
    """Insert origins in one `executemany` (each needs id, source_id, remote_id, asset_id).

    Logs nothing itself: origins are logged through their asset (see refresh_asset_status).
    """
    del scope
    if not rows:
        return
    now = now_ms()
    defaults = {
        "status": OriginStatus.PRESENT.value,
        "version": 1,
        "first_seen_at": now,
        "last_seen_at": now,
        "meta": "{}",
    }
    tx.insert_many(
        "origins",
        _ORIGIN_COLUMNS,
        [tuple(row.get(c, defaults.get(c)) for c in _ORIGIN_COLUMNS) for row in rows],
    )


def insert_origin(tx: WriteTx, scope: str, values: dict[str, Any]) -> None:
    insert_origins(tx, scope, [values])


def repoint_origin(tx: WriteTx, scope: str, origin: Origin, values: dict[str, Any]) -> None:
    """Update an origin in place (new asset, new path, back to present …), bumping its version."""
    version = origin.version + 1
    tx.conn.execute(
        update(schema.origins)
        .where(schema.origins.c.id == origin.id)
        .values(status=OriginStatus.PRESENT.value, version=version, last_seen_at=now_ms(), **values)
    )


def mark_origins_missing(tx: WriteTx, scope: str, origins: Sequence[Origin]) -> set[str]:
    """Mark present origins missing; returns the asset ids whose status must be re-derived."""
    todo = [o for o in origins if o.status == OriginStatus.PRESENT]
    if not todo:
        return set()
    table = schema.origins
    tx.conn.execute(
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .values(status=OriginStatus.MISSING.value, version=bindparam("b_version")),
        [{"b_id": o.id, "b_version": o.version + 1} for o in todo],
    )
    return {o.asset_id for o in todo}


def refresh_asset_status(tx: WriteTx, asset_ids: Iterable[str]) -> int:
    """Record that these assets' origins changed: re-derive `present`/`missing`, bump the
    version and log a change. Returns how many assets became missing.

    Origins are part of an asset's state in the change log (an entry carries the asset with
    its origins), so an origin that appears, moves or goes missing logs its asset.
    """
    ids = sorted(set(asset_ids))
    if not ids:
        return 0
    went_missing = 0
    assets, origins = schema.assets, schema.origins
    for chunk in _chunks(ids):
        present_count = (
            select(func.count())
            .where(origins.c.asset_id == assets.c.id, origins.c.status == "present")
            .scalar_subquery()
        )
        rows = (
            tx.conn.execute(
                select(
                    assets.c.id,
                    assets.c.owner_id,
                    assets.c.status,
                    assets.c.version,
                    present_count.label("present"),
                ).where(assets.c.id.in_(chunk))
            )
            .mappings()
            .all()
        )
        for row in rows:
            wanted = AssetStatus.PRESENT if row["present"] else AssetStatus.MISSING
            version = row["version"] + 1
            tx.conn.execute(
                update(assets)
                .where(assets.c.id == row["id"])
                .values(status=wanted.value, version=version, updated_at=now_ms())
            )
            tx.record(row["owner_id"], "asset", row["id"], "upsert", version)
            went_missing += row["status"] != wanted.value and wanted == AssetStatus.MISSING
    return went_missing


def set_thumbnail(tx: WriteTx, asset_id: str, thumb_hash: str | None) -> None:
    row = tx.conn.execute(
        select(schema.assets.c.owner_id, schema.assets.c.version).where(
            schema.assets.c.id == asset_id
        )
    ).first()
    if row is None:
        raise NotFoundError(f"no asset with id {asset_id}")
    version = row.version + 1
    tx.conn.execute(
        update(schema.assets)
        .where(schema.assets.c.id == asset_id)
        .values(thumb_hash=thumb_hash, version=version, updated_at=now_ms())
    )
    tx.record(row.owner_id, "asset", asset_id, "upsert", version)


def get_asset(conn: Connection, asset_id: str) -> Asset:
    row = (
        conn.execute(select(schema.assets).where(schema.assets.c.id == asset_id)).mappings().first()
    )
    if row is None:
        raise NotFoundError(f"no asset with id {asset_id}")
    origins = origins_of_assets(conn, [asset_id]).get(asset_id, [])
    return asset_from_row(row, origins)


def list_assets(
    conn: Connection,
    *,
    source_id: str | None = None,
    status: str | None = None,
    limit: int = 100,
    before: tuple[int, str] | None = None,
) -> list[Asset]:
    """Newest first, keyset-paginated on `(created_at, id)`."""
    assets = schema.assets
    query = select(assets).order_by(assets.c.created_at.desc(), assets.c.id.desc()).limit(limit)
    if status:
        query = query.where(assets.c.status == status)
    if source_id:
        query = query.where(
            select(schema.origins.c.id)
            .where(
                schema.origins.c.asset_id == assets.c.id, schema.origins.c.source_id == source_id
            )
            .exists()
        )
    if before:
        created, asset_id = before
        query = query.where(
            or_(
                assets.c.created_at < created,
                and_(assets.c.created_at == created, assets.c.id < asset_id),
            )
        )
    rows = conn.execute(query).mappings().all()
    origins = origins_of_assets(conn, [r["id"] for r in rows])
    return [asset_from_row(r, origins.get(r["id"], [])) for r in rows]


def asset_summaries(conn: Connection, ids: Sequence[str]) -> list[dict[str, Any]]:
    """The asset summary a gallery needs to draw a tile without another request, in `ids`
    order (the API's list and the change feed's entries use the same shape)."""
    a, o = schema.assets, schema.origins
    found: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(list(ids)):
        origins: dict[str, list[dict[str, Any]]] = {}
        inherited: dict[str, dict[str, Any]] = {}  # from a collection; the first origin wins
        for r in conn.execute(
            select(
                o.c.asset_id,
                o.c.source_id,
                o.c.remote_id,
                o.c.status,
                o.c.fetch_status,
                o.c.inherited,
            )
            .where(o.c.asset_id.in_(chunk))
            .order_by(o.c.first_seen_at)
        ).mappings():
            entry = {"source_id": r["source_id"], "path": r["remote_id"], "status": r["status"]}
            if r["fetch_status"] is not None:  # a remote origin: where its bytes stand
                entry["fetch"] = r["fetch_status"]
            origins.setdefault(r["asset_id"], []).append(entry)
            if r["inherited"] and r["status"] == OriginStatus.PRESENT.value:
                values = inherited.setdefault(r["asset_id"], {})
                for name, value in json.loads(r["inherited"]).items():
                    values.setdefault(name, value)
        labels = asset_labels(conn, chunk)
        for r in conn.execute(select(a).where(a.c.id.in_(chunk))).mappings():
            mine = origins.get(r["id"], [])
            # A remote image fetched on demand has no thumbnail until someone asks for it:
            # give its URL, so the gallery's request is what fetches it.
            on_demand = r["hash"] is None and any(x.get("fetch") == "on-demand" for x in mine)
            found[r["id"]] = {
                "id": r["id"],
                "status": r["status"],
                "kind": r["kind"],
                "format": r["format"],
                "mime": r["mime"],
                "width": r["width"],
                "height": r["height"],
                "size": r["size"],
                "hash": r["hash"],
                "version": r["version"],
                "trashed": r["trashed_at"] is not None,
                "thumbnail": f"/api/assets/{r['id']}/thumbnail"
                if r["thumb_hash"] or (on_demand and r["kind"] == "image")
                else None,
                "original": f"/api/assets/{r['id']}/original",
                "created_at": r["created_at"],
                "updated_at": r["updated_at"],
                "origins": mine,
                "labels": labels.get(r["id"], []),  # tags, people, studio, collections…
                "inherited": inherited.get(r["id"], {}),  # date, photographer, details
            }
    return [found[i] for i in ids if i in found]


def find_asset_ids(
    conn: Connection,
    *,
    owner_id: str,
    source_id: str | None = None,
    status: str | None = None,
    text: str | None = None,
    created_from: int | None = None,
    created_to: int | None = None,
    entity_ids: Sequence[str] = (),
    before: tuple[int, str] | None = None,
    limit: int = 100,
) -> list[tuple[int, str]]:
    """`(created_at, id)` of one owner's assets, newest first, keyset-paginated on `before`.

    `status`: present | missing | trashed (trashed assets appear only when asked for);
    `text` matches file paths, formats and source metadata such as a ComfyUI prompt (LIKE,
    with wildcards escaped); `entity_ids`: linked to every one of these tags, people, studios
    or collections, directly or inherited from a collection (catalog/organise.py).
    """
    a, o = schema.assets, schema.origins
    query = (
        select(a.c.created_at, a.c.id)
        .where(a.c.owner_id == owner_id)
        .order_by(a.c.created_at.desc(), a.c.id.desc())
        .limit(limit)
    )
    if status == "trashed":
        query = query.where(a.c.trashed_at.is_not(None))
    else:
        query = query.where(a.c.trashed_at.is_(None))
        if status:
            query = query.where(a.c.status == status)
    if source_id:
        query = query.where(
            select(o.c.id).where(o.c.asset_id == a.c.id, o.c.source_id == source_id).exists()
        )
    if text:
        pattern = "%" + like_escape(text) + "%"
        query = query.where(
            or_(
                a.c.format.ilike(pattern, escape="\\"),
                select(o.c.id)
                .where(
                    o.c.asset_id == a.c.id,
                    or_(
                        o.c.remote_id.ilike(pattern, escape="\\"),
                        o.c.meta.ilike(pattern, escape="\\"),  # a remote's prompt, workflow…
                    ),
                )
                .exists(),
            )
        )
    oe = schema.origin_entities
    for entity_id in entity_ids:
        query = query.where(
            select(oe.c.origin_id)
            .join(o, o.c.id == oe.c.origin_id)
            .where(o.c.asset_id == a.c.id, oe.c.entity_id == entity_id)
            .exists()
        )
    if created_from is not None:
        query = query.where(a.c.created_at >= created_from)
    if created_to is not None:
        query = query.where(a.c.created_at < created_to)
    if before:
        created, asset_id = before
        # Written so the planner sees a range on the index (`created_at <= ?`): the plain
        # `created_at < ? OR (created_at = ? AND id < ?)` is not used as one, and a deep page
        # then costs in proportion to its depth.
        query = query.where(
            a.c.created_at <= created, or_(a.c.created_at < created, a.c.id < asset_id)
        )
    return [(int(r[0]), str(r[1])) for r in conn.execute(query)]


def set_trashed(tx: WriteTx, asset_id: str, owner_id: str, trashed: bool) -> bool:
    """Move an asset to the trash or back. False when it is not this owner's asset."""
    a = schema.assets
    row = tx.conn.execute(
        select(a.c.version).where(a.c.id == asset_id, a.c.owner_id == owner_id)
    ).first()
    if row is None:
        return False
    version = row.version + 1
    tx.conn.execute(
        update(a)
        .where(a.c.id == asset_id)
        .values(trashed_at=now_ms() if trashed else None, version=version, updated_at=now_ms())
    )
    tx.record(owner_id, "asset", asset_id, "upsert", version)
    return True


def count_assets(conn: Connection, status: str | None = None) -> int:
    query = select(func.count()).select_from(schema.assets)
    if status:
        query = query.where(schema.assets.c.status == status)
    return int(conn.execute(query).scalar_one())


def origin_meta(origin_row: RowMapping) -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads(origin_row["meta"])
    return loaded
