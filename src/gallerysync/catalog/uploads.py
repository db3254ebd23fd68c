"""Uploads in the catalog: the per-user `upload` source, the bulk hash check, recording a file.

Pushed files are content-addressed per owner: an upload whose bytes the owner already has is
a duplicate (one asset, whatever the number of machines or folders that pushed it). The
origin of an upload is `(the owner's upload source, "<device>/<relative path>")`, so a file
that a client reports again with new content moves its origin to a new asset — a new version —
and the previous asset stays, reachable by its id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from gallerysync.catalog import schema
from gallerysync.catalog.assets import (
    assets_by_hashes,
    insert_assets,
    insert_origins,
    lock_owner_assets,
    origins_by_remote_ids,
    refresh_asset_status,
)
from gallerysync.catalog.db import WriteTx
from gallerysync.catalog.sources import create_source
from gallerysync.domain import OriginStatus, new_id, now_ms

__all__ = [
    "UPLOAD_KIND",
    "HashState",
    "UploadResult",
    "ensure_upload_source",
    "hash_states",
    "record_upload",
    "upload_remote_id",
]

UPLOAD_KIND = "upload"
_CHUNK = 500


def upload_remote_id(device: str, rel_path: str) -> str:
    """An upload's identity within its owner's upload source."""
    return f"{device}/{rel_path}"


@dataclass(frozen=True)
class HashState:
    """What the owner has under one content hash (for `POST /api/assets/check`)."""

    asset_id: str
    trashed: bool
    present: bool  # some origin's file is present (else only the blob store may have it)


@dataclass(frozen=True)
class UploadResult:
    asset_id: str
    created: bool  # False: the owner already had these bytes (a duplicate)
    previous_asset_id: str | None  # the version this upload replaced at the same path


def hash_states(conn: Connection, owner_id: str, hashes: Sequence[str]) -> dict[str, HashState]:
    """The owner's assets among `hashes` (other users' assets are never consulted)."""
    a = schema.assets
    found: dict[str, HashState] = {}
    unique = sorted(set(hashes))
    for start in range(0, len(unique), _CHUNK):
        rows = conn.execute(
            select(a.c.id, a.c.hash, a.c.trashed_at, a.c.status).where(
                a.c.owner_id == owner_id, a.c.hash.in_(unique[start : start + _CHUNK])
            )
        )
        for row in rows:
            found[row.hash] = HashState(row.id, row.trashed_at is not None, row.status == "present")
    return found


def ensure_upload_source(tx: WriteTx, owner_id: str) -> str:
    """The id of the owner's `upload` source, made on first use. Callers hold the owner's
    asset lock (`lock_owner_assets`), so two first uploads cannot both create it."""
    s = schema.sources
    found = tx.conn.execute(
        select(s.c.id).where(s.c.owner_id == owner_id, s.c.kind == UPLOAD_KIND)
    ).first()
    if found is not None:
        return str(found.id)
    owner_name = tx.conn.execute(
        select(schema.users.c.name).where(schema.users.c.id == owner_id)
    ).scalar_one()
    source = create_source(
        tx,
        source_id=new_id(),
        kind=UPLOAD_KIND,
        name=f"upload:{owner_name}",
        owner_id=owner_id,
        options={},
    )
    return source.id


def record_upload(
    tx: WriteTx,
    *,
    owner_id: str,
    device: str,
    rel_path: str,
    blob_hash: str,
    size: int,
    media: dict[str, Any] | None,
    mtime_ms: int | None,
) -> UploadResult:
    """Record verified bytes (already durable in the blob store) pushed from `device`.

    `media` (kind, format, mime, width, height) is needed only when the owner has no asset
    with these bytes yet; a duplicate passes None and only gains the origin.
    """
    lock_owner_assets(tx, owner_id)
    source_id = ensure_upload_source(tx, owner_id)
    existing = assets_by_hashes(tx.conn, owner_id, [blob_hash]).get(blob_hash)
    now = now_ms()
    if existing is None:
        if media is None:
            raise ValueError("a new asset needs its media values")
        asset_id = new_id()
        insert_assets(
            tx,
            [{"id": asset_id, "owner_id": owner_id, "hash": blob_hash, "size": size, **media}],
        )
    else:
        asset_id = existing.id
    tx.insert_many(
        "blobs",
        ("hash", "size", "role", "created_at"),
        [(blob_hash, size, "original", now)],
        on_conflict="ON CONFLICT (hash) DO NOTHING",
    )
    remote_id = upload_remote_id(device, rel_path)
    origin = origins_by_remote_ids(tx.conn, source_id, [remote_id]).get(remote_id)
    meta: dict[str, Any] = {"device": device, "path": rel_path, "mtime": mtime_ms}
    previous: str | None = None
    if origin is None:
        insert_origins(
            tx,
            owner_id,
            [
                {
                    "id": new_id(),
                    "source_id": source_id,
                    "remote_id": remote_id,
                    "asset_id": asset_id,
                    "path": rel_path,
                    "size": size,
                    "meta": orjson.dumps(meta).decode(),
                }
            ],
        )
        refresh_asset_status(tx, {asset_id})  # logs the asset with its new origin
    elif origin.asset_id != asset_id or origin.status != OriginStatus.PRESENT:
        if origin.asset_id != asset_id:
            previous = origin.asset_id
            old_meta = orjson.loads(
                tx.conn.execute(
                    select(schema.origins.c.meta).where(schema.origins.c.id == origin.id)
                ).scalar_one()
            )
            meta["previous"] = [*old_meta.get("previous", []), previous][-20:]
        o = schema.origins
        tx.conn.execute(
            update(o)
            .where(o.c.id == origin.id)
            .values(
                asset_id=asset_id,
                status=OriginStatus.PRESENT.value,
                size=size,
                meta=orjson.dumps(meta).decode(),
                version=origin.version + 1,
                last_seen_at=now,
            )
        )
        refresh_asset_status(tx, {asset_id, *([previous] if previous else [])})
    return UploadResult(asset_id, existing is None, previous)
