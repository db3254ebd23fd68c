"""Remote origins in the catalog: apply a page of items (phase 1), record downloads (phase 2),
sweep what a full listing no longer has, and the engine's per-(source, entity type) state.

Set-based like folder registration: a page of items costs a handful of `IN (…)` selects and one
`executemany` per table, inside the transaction that also stores the cursor after the page.

A remote asset exists before its bytes do: its `hash` stays NULL until phase 2 has verified
them, and its origin's `fetch_status` says what phase 2 will do — `pending` (queued), `on-demand`
(fetched when someone opens it), `off`, `done`, or `failed` (with `fetch_error`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.engine import Connection

from gallerysync.catalog import schema
from gallerysync.catalog.assets import (
    assets_by_hashes,
    insert_assets,
    insert_origins,
    lock_owner_assets,
    refresh_asset_status,
)
from gallerysync.catalog.db import WriteTx, like_escape
from gallerysync.catalog.jobs import enqueue_many
from gallerysync.catalog.organise import CountTracker, settle_origins, sweep_entities, write_links
from gallerysync.domain import AssetStatus, OriginStatus, RemoteItem, Source, new_id, now_ms
from gallerysync.errors import NotFoundError
from gallerysync.gc_pause import gc_paused

__all__ = [
    "FETCH_WANTED",
    "AppliedPage",
    "PassState",
    "RemoteOrigin",
    "add_pending",
    "apply_items",
    "download_job_key",
    "fetch_counts",
    "fetch_status_for",
    "get_remote_origin",
    "get_remote_origins",
    "held_count",
    "load_pass_state",
    "mark_fetch_failed",
    "mark_not_modified",
    "pending_origin_ids",
    "record_download",
    "record_downloads",
    "save_pass_state",
    "sweep_unseen",
]

FETCH_WANTED = ("pending", "on-demand", "off")  # bytes not here yet (`download --all-pending`)
_CHUNK = 500
NameMedia = Callable[[str], tuple[str, str | None, str | None]]  # name → kind, format, mime


def fetch_status_for(policy: str) -> str:
    return {"auto": "pending", "on-demand": "on-demand"}.get(policy, "off")


def download_job_key(source_id: str) -> str:
    """One download job per source: it drains every pending origin of that source."""
    return f"download:{source_id}"


@dataclass
class AppliedPage:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    merged: int = 0  # new origins attached to an asset that already had these bytes
    to_download: int = 0


@dataclass
class RemoteOrigin:
    id: str
    source_id: str
    remote_id: str
    asset_id: str
    status: str
    meta: dict[str, Any]
    remote_version: str | None
    fetch_status: str | None
    etag: str | None
    asset_hash: str | None
    owner_id: str
    name: str  # the file name (its extension decides how the bytes are probed)


def _existing(
    conn: Connection, source_id: str, remote_ids: Sequence[str], *, with_meta: bool
) -> dict[str, Any]:
    """The origins of these remote ids with their asset's hash; `with_meta` adds the stored
    metadata (only needed to compare content versions: a ComfyUI entry's is large)."""
    o, a = schema.origins, schema.assets
    columns = [
        o.c.id,
        o.c.remote_id,
        o.c.asset_id,
        o.c.status,
        o.c.remote_version,
        o.c.fetch_status,
        o.c.version,
        a.c.hash,
        *([o.c.meta] if with_meta else []),
    ]
    found: dict[str, Any] = {}
    for start in range(0, len(remote_ids), _CHUNK):
        chunk = remote_ids[start : start + _CHUNK]
        rows = conn.execute(
            select(*columns)
            .join(a, a.c.id == o.c.asset_id)
            .where(o.c.source_id == source_id, o.c.remote_id.in_(chunk))
        )
        for row in rows:
            found[row.remote_id] = row
    return found


def apply_items(
    tx: WriteTx,
    source: Source,
    items: Sequence[RemoteItem],
    *,
    policy: str,
    seen_at: int | None,
    name_media: NameMedia,
    organise: bool = False,
) -> AppliedPage:
    """Upsert one page of items; idempotent (re-applying a page changes nothing).

    `seen_at` (full passes of sources that list everything) stamps every listed origin, so the
    sweep afterwards can tombstone the ones not stamped. `organise`: the source links items to
    organising entities — store each changed item's links and settle its derived state
    (catalog/organise.py) in this same transaction.
    """
    counts = AppliedPage()
    owner, sid = source.owner_id, source.id
    lock_owner_assets(tx, owner)
    by_id: dict[str, RemoteItem] = {}
    for item in items:
        by_id.pop(item.remote_id, None)
        by_id[item.remote_id] = item
    with_meta = any(i.content_version is not None for i in by_id.values())
    existing = _existing(tx.conn, sid, list(by_id), with_meta=with_meta)
    tracker = CountTracker(tx) if organise else None
    if tracker is not None:
        tracker.watch(row.asset_id for row in existing.values())
    link_sets: dict[str, tuple[Sequence[str], dict[str, int]]] = {}
    hashes = [i.content_hash for i in by_id.values() if i.content_hash]
    with_bytes = assets_by_hashes(tx.conn, owner, hashes) if hashes else {}
    now = now_ms()
    new_assets: list[dict[str, Any]] = []
    new_origins: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    seen: list[str] = []
    gone: list[str] = []
    touched: set[str] = set()
    fetch_new = fetch_status_for(policy)

    for item in by_id.values():
        row = existing.get(item.remote_id)
        if item.deleted:
            if row is not None and row.status == OriginStatus.PRESENT:
                gone.append(row.id)
                touched.add(row.asset_id)
                counts.deleted += 1
            continue
        known = with_bytes.get(item.content_hash) if item.content_hash else None
        stored_meta = {**item.meta, "created_at": item.created_at}
        if item.content_hash:
            stored_meta["content_hash"] = item.content_hash
        if item.content_version:
            stored_meta["content_version"] = item.content_version
        meta = orjson.dumps(stored_meta, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        if row is None:
            if known is not None:
                asset_id, fetch = known.id, "done"
                touched.add(known.id)
                counts.merged += 1
            else:
                asset_id, fetch = new_id(), fetch_new
                new_assets.append(_placeholder(asset_id, owner, item, name_media, now))
            origin_id = new_id()
            link_sets[item.remote_id] = (item.links, item.positions)
            new_origins.append(
                {
                    "id": origin_id,
                    "source_id": sid,
                    "remote_id": item.remote_id,
                    "asset_id": asset_id,
                    "path": item.name,
                    "size": item.size,
                    "meta": meta,
                    "remote_version": item.version,
                    "fetch_status": fetch,
                    "first_seen_at": now,
                    "last_seen_at": now,
                }
            )
            counts.added += 1
            counts.to_download += fetch == "pending"
            continue
        if row.remote_version == item.version and row.status == OriginStatus.PRESENT:
            counts.unchanged += 1
            if seen_at is not None:
                seen.append(row.id)
            continue
        values: dict[str, Any] = {
            "b_id": row.id,
            "asset_id": row.asset_id,
            "status": OriginStatus.PRESENT.value,
            "meta": meta,
            "remote_version": item.version,
            "fetch_status": row.fetch_status,
            "size": item.size,
            "version": row.version + 1,
            "last_seen_at": now,
        }
        if item.content_hash and row.hash and item.content_hash != row.hash:
            # New bytes behind the same remote id: a new asset version; the old one stays.
            if known is not None:
                values.update(asset_id=known.id, fetch_status="done")
            else:
                values.update(asset_id=new_id(), fetch_status=fetch_new)
                new_assets.append(_placeholder(values["asset_id"], owner, item, name_media, now))
        elif row.fetch_status == "done" and (
            item.content_may_change
            or (
                item.content_version is not None
                and orjson.loads(row.meta).get("content_version") != item.content_version
            )
        ):
            values["fetch_status"] = fetch_new if fetch_new != "off" else "done"
        counts.to_download += values["fetch_status"] == "pending"
        touched.update((row.asset_id, values["asset_id"]))
        link_sets[item.remote_id] = (item.links, item.positions)
        updates.append(values)
        counts.updated += 1

    insert_assets(tx, new_assets)
    insert_origins(tx, owner, new_origins)
    o = schema.origins
    if updates:
        tx.conn.execute(
            update(o)
            .where(o.c.id == bindparam("b_id"))
            .values(
                asset_id=bindparam("asset_id"),
                status=bindparam("status"),
                meta=bindparam("meta"),
                remote_version=bindparam("remote_version"),
                fetch_status=bindparam("fetch_status"),
                size=bindparam("size"),
                version=bindparam("version"),
                last_seen_at=bindparam("last_seen_at"),
            ),
            updates,
        )
    if gone:
        _mark_missing(tx, gone)
    for start in range(0, len(seen), _CHUNK):
        tx.conn.execute(
            update(o).where(o.c.id.in_(seen[start : start + _CHUNK])).values(last_seen_at=seen_at)
        )
    refresh_asset_status(tx, touched - {a["id"] for a in new_assets})
    if tracker is not None:
        write_links(tx, sid, link_sets)
        settle = [o["id"] for o in new_origins] + [u["b_id"] for u in updates]
        settle_origins(tx, settle, tracker)
        tracker.apply()
    if counts.to_download:
        enqueue_many(tx, "download", [({"source_id": sid}, download_job_key(sid))])
    return counts


def _placeholder(
    asset_id: str, owner: str, item: RemoteItem, name_media: NameMedia, now: int
) -> dict[str, Any]:
    """The row of an asset known only by its metadata: no hash until phase 2 verifies bytes."""
    kind, fmt, mime = name_media(item.name)
    return {
        "id": asset_id,
        "owner_id": owner,
        "hash": None,
        "kind": kind,
        "format": fmt,
        "mime": mime,
        "size": item.size,
        "created_at": item.created_at or now,
        "updated_at": now,
    }


def _mark_missing(tx: WriteTx, origin_ids: Sequence[str]) -> None:
    o = schema.origins
    for start in range(0, len(origin_ids), _CHUNK):
        tx.conn.execute(
            update(o)
            .where(o.c.id.in_(origin_ids[start : start + _CHUNK]))
            .values(status=OriginStatus.MISSING.value, version=o.c.version + 1)
        )


@dataclass
class SweepResult:
    swept: int
    skipped_reason: str | None
    deleted_keys: set[str] = field(default_factory=set)


def sweep_unseen(
    tx: WriteTx,
    source: Source,
    *,
    seen_since: int | None = None,
    keep_ids: set[str] | None = None,
    max_fraction: float,
    force: bool,
    entity_type: str | None = None,
) -> SweepResult:
    """Tombstone (mark missing) the origins a complete listing no longer has: those not
    stamped since `seen_since` (mark-and-sweep), or whose remote id is not in `keep_ids`
    (id-set difference). Guards: never when the listing was empty while we hold items, never
    more than `max_fraction` of them without `force`; a skipped sweep says why.

    `entity_type`: the source has typed keys (`"tag:7"`); sweep only that type's origins and
    entities. Entities are deleted (and what linked to them settled); their keys are returned
    in `deleted_keys` so later types can re-check what linked to them."""
    o, e = schema.origins, schema.entities
    query = select(o.c.id, o.c.remote_id, o.c.asset_id, o.c.last_seen_at).where(
        o.c.source_id == source.id, o.c.status == OriginStatus.PRESENT.value
    )
    entity_rows: list[Any] = []
    if entity_type is not None:
        prefix = like_escape(entity_type + ":") + "%"
        query = query.where(o.c.remote_id.like(prefix, escape="\\"))
        entity_rows = list(
            tx.conn.execute(
                select(
                    e.c.id,
                    e.c.remote_id,
                    e.c.id.label("asset_id"),
                    e.c.last_seen_at,
                ).where(e.c.source_id == source.id, e.c.remote_id.like(prefix, escape="\\"))
            )
        )
    rows = [*tx.conn.execute(query).all(), *entity_rows]
    entity_ids = {r.id for r in entity_rows}
    if not rows:
        return SweepResult(0, None)
    if keep_ids is not None:
        doomed = [r for r in rows if r.remote_id not in keep_ids]
        listed = len(keep_ids)
    else:
        assert seen_since is not None
        doomed = [r for r in rows if r.last_seen_at < seen_since]
        listed = len(rows) - len(doomed)
    if not doomed:
        return SweepResult(0, None)
    if listed == 0:
        return SweepResult(
            0,
            f"sweep skipped: the source listed nothing while we hold {len(rows)} items "
            "(an outage or a wrong account looks like this)",
        )
    fraction = len(doomed) / len(rows)
    if fraction > max_fraction and not force:
        return SweepResult(
            0,
            f"sweep skipped: it would remove {len(doomed)} of {len(rows)} items "
            f"({fraction:.0%} > {max_fraction:.0%}); run a full sync with --force to allow it",
        )
    doomed_entities = {r.remote_id for r in doomed if r.id in entity_ids}
    doomed_origins = [r for r in doomed if r.id not in entity_ids]
    deleted_keys: set[str] = set()
    if doomed_entities:
        deleted_keys = sweep_entities(tx, source, doomed_entities)
    if doomed_origins:
        tracker = CountTracker(tx)
        tracker.watch(r.asset_id for r in doomed_origins)
        _mark_missing(tx, [r.id for r in doomed_origins])
        refresh_asset_status(tx, {r.asset_id for r in doomed_origins})
        tracker.apply()
    return SweepResult(len(doomed), None, deleted_keys)


# --- engine state per (source, entity type) -------------------------------------------------


@dataclass
class PassState:
    """`watermark`: the cursor the last complete pass ended on. `open_pass`: a pass that has
    not finished (killed, or stopped by `--max-pages`): `{mode, started_at, cursor, since}`."""

    watermark: str | None = None
    open_pass: dict[str, Any] | None = None
    last_sync_at: int | None = None
    # Keys of entities of earlier types that changed or went away since this type was last
    # synced: what links to them must be re-checked (`pending` survives a killed sync).
    pending: list[str] = field(default_factory=list)


def load_pass_state(conn: Connection, source_id: str, entity_type: str) -> PassState:
    t = schema.sync_state
    row = conn.execute(
        select(t.c.cursor, t.c.last_sync_at).where(
            t.c.source_id == source_id, t.c.entity_type == entity_type
        )
    ).first()
    if row is None or not row.cursor:
        return PassState(last_sync_at=row.last_sync_at if row else None)
    try:
        data = json.loads(row.cursor)
    except ValueError:
        return PassState(last_sync_at=row.last_sync_at)
    pending = [str(k) for k in data.get("pending") or []]
    return PassState(data.get("watermark"), data.get("open_pass"), row.last_sync_at, pending)


def add_pending(
    tx: WriteTx, source_id: str, entity_types: Sequence[str], keys: Iterable[str]
) -> None:
    """Note, for each of these (later) types, entity keys whose dependants must be re-checked."""
    wanted = set(keys)
    if not wanted:
        return
    for entity_type in entity_types:
        state = load_pass_state(tx.conn, source_id, entity_type)
        merged = sorted(set(state.pending) | wanted)
        if merged != state.pending:
            state.pending = merged
            save_pass_state(tx, source_id, entity_type, state, finished=False)


def held_count(conn: Connection, source_id: str, entity_type: str) -> int:
    """How many items of this type (typed keys) we hold as present: what the source's total
    must equal when nothing was deleted."""
    o, e = schema.origins, schema.entities
    # Keys of the type sort between "type:" and "type;" (";" follows ":"): a range the
    # (source_id, remote_id) indexes answer without reading rows.
    low, high = entity_type + ":", entity_type + ";"
    origins = conn.execute(
        select(func.count()).where(
            o.c.source_id == source_id, o.c.remote_id >= low, o.c.remote_id < high
        )
    ).scalar_one()
    absent = conn.execute(
        select(func.count()).where(
            o.c.source_id == source_id,
            o.c.status != OriginStatus.PRESENT.value,
            o.c.remote_id >= low,
            o.c.remote_id < high,
        )
    ).scalar_one()
    entities = conn.execute(
        select(func.count()).where(
            e.c.source_id == source_id, e.c.remote_id >= low, e.c.remote_id < high
        )
    ).scalar_one()
    return int(origins) - int(absent) + int(entities)


def save_pass_state(
    tx: WriteTx, source_id: str, entity_type: str, state: PassState, *, finished: bool
) -> None:
    t = schema.sync_state
    now = now_ms()
    values: dict[str, Any] = {
        "cursor": json.dumps(
            {"watermark": state.watermark, "open_pass": state.open_pass, "pending": state.pending}
        ),
        "updated_at": now,
    }
    if finished:
        values["last_sync_at"] = now
    where = (t.c.source_id == source_id, t.c.entity_type == entity_type)
    if tx.conn.execute(update(t).where(*where).values(**values)).rowcount == 0:
        tx.conn.execute(insert(t).values(source_id=source_id, entity_type=entity_type, **values))


# --- phase 2 ----------------------------------------------------------------------------------


def get_remote_origin(conn: Connection, origin_id: str) -> RemoteOrigin:
    found = get_remote_origins(conn, [origin_id]).get(origin_id)
    if found is None:
        raise NotFoundError(f"no origin {origin_id}")
    return found


def get_remote_origins(conn: Connection, origin_ids: Sequence[str]) -> dict[str, RemoteOrigin]:
    """Origins with what phase 2 needs of their asset, by id (unknown ids are left out)."""
    o, a = schema.origins, schema.assets
    found: dict[str, RemoteOrigin] = {}
    with gc_paused():  # thousands of decoded metas at once: see `gc_pause`
        for start in range(0, len(origin_ids), _CHUNK):
            for row in conn.execute(
                select(o, a.c.hash.label("asset_hash"), a.c.owner_id)
                .join(a, a.c.id == o.c.asset_id)
                .where(o.c.id.in_(origin_ids[start : start + _CHUNK]))
            ):
                found[row.id] = RemoteOrigin(
                    id=row.id,
                    source_id=row.source_id,
                    remote_id=row.remote_id,
                    asset_id=row.asset_id,
                    status=row.status,
                    meta=orjson.loads(row.meta),
                    remote_version=row.remote_version,
                    fetch_status=row.fetch_status,
                    etag=row.etag,
                    asset_hash=row.asset_hash,
                    owner_id=row.owner_id,
                    name=row.path or row.remote_id.rpartition("/")[2],
                )
    return found


def pending_origin_ids(
    conn: Connection,
    *,
    source_ids: Iterable[str],
    statuses: Sequence[str] = ("pending",),
    asset_ids: Sequence[str] | None = None,
    limit: int | None = None,
) -> list[str]:
    """Origins of these sources whose bytes phase 2 should fetch, oldest first."""
    o = schema.origins
    query = (
        select(o.c.id)
        .where(
            o.c.source_id.in_(list(source_ids)),
            o.c.fetch_status.in_(list(statuses)),
            o.c.status == OriginStatus.PRESENT.value,
        )
        .order_by(o.c.first_seen_at, o.c.id)
    )
    if asset_ids is not None:
        query = query.where(o.c.asset_id.in_(list(asset_ids)))
    if limit is not None:
        query = query.limit(limit)
    return [r[0] for r in conn.execute(query)]


def fetch_counts(conn: Connection, source_id: str) -> dict[str, int]:
    """A remote source's origins by phase-2 state (pending, on-demand, off, done, failed)."""
    o = schema.origins
    counts = dict.fromkeys(("pending", "on-demand", "off", "done", "failed"), 0)
    for status, n in conn.execute(
        select(o.c.fetch_status, func.count())
        .where(o.c.source_id == source_id, o.c.fetch_status.is_not(None))
        .group_by(o.c.fetch_status)
    ):
        counts[str(status)] = int(n)
    return counts


def mark_fetch_failed(tx: WriteTx, origin_id: str, error: str, *, gone: bool) -> None:
    """Record why a download gave up. `gone` (the source answered 404): the origin is missing
    — history can list files that were deleted — and its asset's status follows."""
    o = schema.origins
    row = tx.conn.execute(select(o.c.asset_id).where(o.c.id == origin_id)).first()
    if row is None:
        return
    values: dict[str, Any] = {"fetch_status": "failed", "fetch_error": error[:2000]}
    counts = CountTracker(tx)
    if gone:
        counts.watch([row.asset_id])
        values.update(status=OriginStatus.MISSING.value, version=o.c.version + 1)
    tx.conn.execute(update(o).where(o.c.id == origin_id).values(**values))
    refresh_asset_status(tx, {row.asset_id})
    counts.apply()


def mark_not_modified(tx: WriteTx, origin_id: str) -> None:
    o = schema.origins
    tx.conn.execute(
        update(o).where(o.c.id == origin_id).values(fetch_status="done", fetch_error=None)
    )


def record_download(
    tx: WriteTx,
    origin: RemoteOrigin,
    *,
    blob_hash: str,
    size: int,
    media: dict[str, Any],
    etag: str | None,
) -> str:
    """Attach verified bytes to an origin; returns the asset id that now holds them.

    - the asset had no bytes yet: it takes these — unless another asset of the owner already
      has them, then the origin moves there (one asset, two origins) and the placeholder goes;
    - the asset had other bytes (the remote file changed): the origin moves to the asset with
      the new bytes (made if needed); the old asset stays, reachable, missing if nothing else
      has it.

    `media`: kind, format, mime, width, height, as probed from the bytes.
    """
    a, o = schema.assets, schema.origins
    lock_owner_assets(tx, origin.owner_id)
    current = tx.conn.execute(
        select(a.c.id, a.c.hash, a.c.version, a.c.created_at).where(a.c.id == origin.asset_id)
    ).first()
    if current is None:
        raise NotFoundError(f"asset {origin.asset_id} vanished")
    other = assets_by_hashes(tx.conn, origin.owner_id, [blob_hash]).get(blob_hash)
    media_values = {"hash": blob_hash, "size": size, **media}
    target = current.id
    counts = CountTracker(tx)  # the origin (and its links) may move to another asset
    counts.watch([current.id] + ([other.id] if other is not None else []))
    if current.hash == blob_hash:
        pass
    elif other is not None:
        target = other.id
    elif current.hash is None:
        version = current.version + 1
        tx.conn.execute(
            update(a)
            .where(a.c.id == current.id)
            .values(status=AssetStatus.PRESENT.value, version=version, updated_at=now_ms())
            .values(**media_values)
        )
        tx.record(origin.owner_id, "asset", current.id, "upsert", version)
    else:
        target = new_id()
        created = origin.meta.get("created_at")  # the source's time for this version
        row = {"id": target, "owner_id": origin.owner_id, **media_values, "updated_at": now_ms()}
        if isinstance(created, int):
            row["created_at"] = created
        insert_assets(tx, [row])
    counts.watch([target])  # before the origin moves there
    tx.conn.execute(
        update(o)
        .where(o.c.id == origin.id)
        .values(
            asset_id=target,
            fetch_status="done",
            fetch_error=None,
            etag=etag,
            size=size,
            status=OriginStatus.PRESENT.value,
            version=o.c.version + 1,
        )
    )
    if target != current.id:
        _drop_if_placeholder(tx, current.id, current.hash)
        refresh_asset_status(tx, {target})
        counts.apply()
    if (
        tx.conn.execute(select(schema.blobs.c.hash).where(schema.blobs.c.hash == blob_hash)).first()
        is None
    ):
        tx.conn.execute(
            insert(schema.blobs).values(
                hash=blob_hash, size=size, role="original", created_at=now_ms()
            )
        )
    return str(target)


DownloadedItem = tuple[RemoteOrigin, str, int, dict[str, Any], str | None]
"""(origin, blob hash, size, media values, etag) of one verified download."""


def record_downloads(tx: WriteTx, items: Sequence[DownloadedItem]) -> list[str]:
    """`record_download` for a batch; returns the asset id holding each item's bytes.

    The common case — a placeholder asset taking bytes no other asset of its owner has — is
    applied set-wise (two `executemany` updates and one insert for the whole batch); merges
    and new versions go through `record_download` one by one, after them.
    """
    a = schema.assets
    for owner in sorted({origin.owner_id for origin, *_ in items}):
        lock_owner_assets(tx, owner)
    ids = [origin.asset_id for origin, *_ in items]
    current: dict[str, Any] = {}
    for start in range(0, len(ids), _CHUNK):
        for row in tx.conn.execute(
            select(a.c.id, a.c.hash, a.c.version).where(a.c.id.in_(ids[start : start + _CHUNK]))
        ):
            current[row.id] = row
    taken: set[tuple[str, str]] = set()
    for owner in {origin.owner_id for origin, *_ in items}:
        hashes = [h for origin, h, *_ in items if origin.owner_id == owner]
        taken.update((owner, h) for h in assets_by_hashes(tx.conn, owner, hashes))
    fast: list[DownloadedItem] = []
    claimed: set[str] = set()
    for item in items:
        origin, blob_hash = item[0], item[1]
        found = current.get(origin.asset_id)
        key = (origin.owner_id, blob_hash)
        if found is None or found.hash is not None or key in taken or origin.asset_id in claimed:
            continue
        fast.append(item)
        taken.add(key)
        claimed.add(origin.asset_id)
    now = now_ms()
    if fast:
        tx.conn.execute(
            update(a)
            .where(a.c.id == bindparam("b_id"))
            .values(
                hash=bindparam("b_hash"),
                size=bindparam("b_size"),
                kind=bindparam("b_kind"),
                format=bindparam("b_format"),
                mime=bindparam("b_mime"),
                width=bindparam("b_width"),
                height=bindparam("b_height"),
                status=AssetStatus.PRESENT.value,
                version=bindparam("b_version"),
                updated_at=now,
            ),
            [
                {
                    "b_id": origin.asset_id,
                    "b_hash": blob_hash,
                    "b_size": size,
                    **{f"b_{k}": media.get(k) for k in ("kind", "format", "mime")},
                    "b_width": media.get("width"),
                    "b_height": media.get("height"),
                    "b_version": current[origin.asset_id].version + 1,
                }
                for origin, blob_hash, size, media, _etag in fast
            ],
        )
        o = schema.origins
        tx.conn.execute(
            update(o)
            .where(o.c.id == bindparam("b_id"))
            .values(
                fetch_status="done",
                fetch_error=None,
                etag=bindparam("b_etag"),
                size=bindparam("b_size"),
                status=OriginStatus.PRESENT.value,
                version=o.c.version + 1,
            ),
            [
                {"b_id": origin.id, "b_etag": etag, "b_size": size}
                for origin, _h, size, _m, etag in fast
            ],
        )
        for origin, *_ in fast:
            tx.record(
                origin.owner_id,
                "asset",
                origin.asset_id,
                "upsert",
                current[origin.asset_id].version + 1,
            )
        tx.insert_many(
            "blobs",
            ("hash", "size", "role", "created_at"),
            [(blob_hash, size, "original", now) for _o, blob_hash, size, _m, _e in fast],
            on_conflict="ON CONFLICT (hash) DO NOTHING",
        )
    done = {item[0].id: item[0].asset_id for item in fast}
    for origin, blob_hash, size, media, etag in items:
        if origin.id not in done:
            done[origin.id] = record_download(
                tx, origin, blob_hash=blob_hash, size=size, media=media, etag=etag
            )
    return [done[origin.id] for origin, *_ in items]


def _drop_if_placeholder(tx: WriteTx, asset_id: str, asset_hash: str | None) -> None:
    """An asset that never had bytes and lost its last origin was only ever a placeholder for
    those bytes: remove it (the feed logs a delete). One with bytes stays, status re-derived."""
    a, o = schema.assets, schema.origins
    left = tx.conn.execute(
        select(func.count()).select_from(o).where(o.c.asset_id == asset_id)
    ).scalar_one()
    if asset_hash is None and left == 0:
        owner = tx.conn.execute(select(a.c.owner_id).where(a.c.id == asset_id)).scalar_one()
        tx.conn.execute(delete(a).where(a.c.id == asset_id))
        tx.record(owner, "asset", asset_id, "delete", 0)
    else:
        refresh_asset_status(tx, {asset_id})
