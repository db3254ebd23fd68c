"""March examined files against the catalog and apply the result, one transaction per batch.

For every examined file the catalog is in one of these states, decided set-wise per batch:

    origin at this path, same bytes          → unchanged
    origin at this path, other bytes         → updated (the origin now points at the new asset;
                                               the old asset goes `missing` if nothing else has it)
    no origin here, bytes unknown            → added (new asset + origin)
    no origin here, bytes known, and an
      origin of that asset vanished this scan → moved (that origin is re-pointed: same asset id)
    no origin here, bytes known, asset missing → moved (across storage dirs: new origin)
    no origin here, bytes known elsewhere     → added (a duplicate: one asset, another origin)

Files that vanished are swept only after every batch, so a move inside a scan never shows the
asset as missing in between.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from gallerysync.catalog import WriteTx
from gallerysync.catalog.assets import (
    assets_by_hashes,
    insert_assets,
    insert_origins,
    lock_owner_assets,
    mark_origins_missing,
    origins_by_remote_ids,
    origins_of_assets,
    refresh_asset_status,
    repoint_origin,
)
from gallerysync.catalog.jobs import enqueue_many
from gallerysync.catalog.scan_cache import CacheEntry, delete_entries, upsert_entries
from gallerysync.domain import (
    Asset,
    AssetStatus,
    Origin,
    OriginStatus,
    ScanCounts,
    Source,
    new_id,
    now_ms,
)
from gallerysync.sources.folder.walk import Examined, FileError, Gone, Outcome, Unstable

__all__ = ["register_outcomes", "sweep_vanished", "thumbnail_job_key", "thumbnail_jobs"]


THUMBNAIL_BATCH = 64


def thumbnail_job_key(asset_id: str) -> str:
    """The dedupe key of the thumbnail job whose first asset is `asset_id`."""
    return f"thumbnail:{asset_id}"


def thumbnail_jobs(asset_ids: Sequence[str]) -> list[tuple[dict[str, Any], str]]:
    """`(payload, dedupe key)` of thumbnail jobs covering `asset_ids`, up to 64 per job.

    One job per small group rather than per asset: a scan of 10,000 files then writes ~160 job
    rows instead of 10,000, while several workers can still share the work.
    """
    chunks = [asset_ids[i : i + THUMBNAIL_BATCH] for i in range(0, len(asset_ids), THUMBNAIL_BATCH)]
    return [({"asset_ids": list(chunk)}, thumbnail_job_key(chunk[0])) for chunk in chunks]


def register_outcomes(
    tx: WriteTx,
    source: Source,
    outcomes: Sequence[Outcome],
    vanished: set[str],
    counts: ScanCounts,
    *,
    max_attempts: int = 5,
) -> None:
    """Apply one batch of examined files. `vanished` holds paths gone this scan (mutated)."""
    owner, sid = source.owner_id, source.id
    lock_owner_assets(tx, owner)
    examined = [o for o in outcomes if isinstance(o, Examined)]
    errors = [o for o in outcomes if isinstance(o, FileError)]
    for outcome in outcomes:
        if isinstance(outcome, Gone):
            vanished.add(outcome.listed.rel_path)
        elif isinstance(outcome, Unstable):
            counts.deferred += 1
            counts.deferred_paths.append(outcome.listed.rel_path)
    paths = [o.listed.rel_path for o in examined] + [o.listed.rel_path for o in errors]
    origins = origins_by_remote_ids(tx.conn, sid, paths)
    by_hash = assets_by_hashes(tx.conn, owner, [o.hash for o in examined])
    candidates = origins_of_assets(tx.conn, [a.id for a in by_hash.values()]) if vanished else {}
    touched: set[str] = set()
    cache_rows: list[CacheEntry] = []
    moved_away: list[str] = []
    new_assets: list[dict[str, Any]] = []
    new_origins: list[dict[str, Any]] = []
    repoints: list[tuple[Origin, dict[str, Any]]] = []

    for item in examined:
        listed = item.listed
        rel = listed.rel_path
        cache_rows.append(
            CacheEntry(rel, listed.size, listed.mtime_ns, listed.inode, item.hash, None)
        )
        origin = origins.get(rel)
        asset = by_hash.get(item.hash)
        if (
            origin is not None
            and asset is not None
            and origin.status == OriginStatus.PRESENT
            and origin.asset_id == asset.id
        ):
            counts.unchanged += 1
            continue
        created = asset is None
        if asset is None:
            row, asset = _new_asset(owner, item)
            new_assets.append(row)
            by_hash[item.hash] = asset
        file_values = {"path": rel, "size": listed.size, "mtime_ns": listed.mtime_ns}
        if origin is not None:
            repoints.append((origin, {"asset_id": asset.id, **file_values}))
            touched.update((origin.asset_id, asset.id))
            if origin.status == OriginStatus.PRESENT:
                counts.updated += 1
            else:
                counts.added += 1
            continue
        moved_from = None if created else _vanished_origin(candidates, asset.id, sid, vanished)
        if moved_from is not None:
            repoints.append((moved_from, {"remote_id": rel, **file_values}))
            vanished.discard(moved_from.remote_id)
            moved_away.append(moved_from.remote_id)
            touched.add(asset.id)
            candidates[asset.id] = [o for o in candidates[asset.id] if o.id != moved_from.id]
            counts.moved += 1
            continue
        origin_id = new_id()
        new_origins.append(
            {
                "id": origin_id,
                "source_id": sid,
                "remote_id": rel,
                "asset_id": asset.id,
                **file_values,
            }
        )
        touched.add(asset.id)
        if not created and asset.status == AssetStatus.MISSING:
            counts.moved += 1
        else:
            counts.added += 1

    failed_origins: list[Origin] = []
    for failed in errors:
        listed = failed.listed
        cache_rows.append(
            CacheEntry(
                listed.rel_path, listed.size, listed.mtime_ns, listed.inode, None, failed.error
            )
        )
        counts.errors += 1
        counts.error_paths.append(listed.rel_path)
        origin = origins.get(listed.rel_path)
        if origin is not None:
            failed_origins.append(origin)

    # Writes, parents first: assets, then origins that point at them.
    insert_assets(tx, new_assets)
    insert_origins(tx, owner, new_origins)
    for origin, values in repoints:
        repoint_origin(tx, owner, origin, values)
    touched |= mark_origins_missing(tx, owner, failed_origins)
    upsert_entries(tx, sid, cache_rows)
    delete_entries(tx, sid, moved_away)
    refresh_asset_status(tx, touched - {row["id"] for row in new_assets})
    enqueue_many(
        tx,
        "thumbnail",
        thumbnail_jobs([row["id"] for row in new_assets if row["kind"] == "image"]),
        max_attempts=max_attempts,
        keys_are_new=True,
    )


def sweep_vanished(
    tx: WriteTx, source: Source, vanished: Iterable[str], counts: ScanCounts, root: Path
) -> None:
    """Mark origins of files that are gone `missing` and forget their cache rows.

    Each path is checked once more on disk first: a file that came back since the walk (a
    save that replaced it, a sync client re-creating it) is left for the next pass.
    """
    paths = sorted(p for p in vanished if not os.path.lexists(root / p))
    if not paths:
        return
    origins = origins_by_remote_ids(tx.conn, source.id, paths)
    present = [o for o in origins.values() if o.status == OriginStatus.PRESENT]
    touched = mark_origins_missing(tx, source.owner_id, present)
    counts.missing += len(present)
    delete_entries(tx, source.id, paths)
    refresh_asset_status(tx, touched)


def _new_asset(owner: str, item: Examined) -> tuple[dict[str, Any], Asset]:
    media = item.media
    asset_id = new_id()
    row = {
        "id": asset_id,
        "owner_id": owner,
        "hash": item.hash,
        "kind": media.kind,
        "format": media.format,
        "mime": media.mime,
        "width": media.width,
        "height": media.height,
        "size": item.listed.size,
    }
    now = now_ms()
    asset = Asset(
        id=asset_id,
        owner_id=owner,
        hash=item.hash,
        status=AssetStatus.PRESENT,
        kind=media.kind,
        format=media.format,
        width=media.width,
        height=media.height,
        size=item.listed.size,
        thumb_hash=None,
        version=1,
        created_at=now,
        updated_at=now,
    )
    return row, asset


def _vanished_origin(
    candidates: dict[str, list[Origin]], asset_id: str, source_id: str, vanished: set[str]
) -> Origin | None:
    for origin in candidates.get(asset_id, []):
        if (
            origin.source_id == source_id
            and origin.remote_id in vanished
            and origin.status == OriginStatus.PRESENT
        ):
            return origin
    return None
