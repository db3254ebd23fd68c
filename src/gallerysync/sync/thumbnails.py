"""The thumbnail job: find an asset's bytes, check they are still its bytes, store a WebP."""

from __future__ import annotations

import io
import logging

from sqlalchemy import select

from gallerysync.blobs.base import BlobStore
from gallerysync.blobs.hashing import hash_bytes
from gallerysync.blobs.thumbnails import THUMBNAIL_SIZE, ThumbnailError, make_thumbnail
from gallerysync.catalog import Catalog, schema
from gallerysync.catalog.assets import get_asset, set_thumbnail
from gallerysync.domain import now_ms
from gallerysync.errors import GallerySyncError
from gallerysync.sync.folder import find_asset_file

__all__ = [
    "SkipJob",
    "ThumbnailJobError",
    "make_asset_thumbnail",
    "make_thumbnails",
    "store_thumbnail",
]

log = logging.getLogger(__name__)
MAX_THUMBNAIL_INPUT = 512 * 1024 * 1024


class ThumbnailJobError(GallerySyncError):
    """The job could not run now (bytes not found or changed); a later attempt may succeed."""

    retryable = True


class SkipJob(GallerySyncError):
    """Nothing to do for this asset (a video, or undecodable bytes): finish without retrying."""


def make_asset_thumbnail(
    catalog: Catalog, blobs: BlobStore, asset_id: str, size: int = THUMBNAIL_SIZE
) -> str:
    """Make and store the thumbnail of one asset; returns the thumbnail's blob hash."""
    with catalog.read() as conn:
        asset = get_asset(conn, asset_id)
    if asset.kind != "image" or asset.hash is None:
        raise SkipJob(f"no thumbnail for a {asset.kind} (no decoder for it)")
    path = find_asset_file(catalog, asset_id)
    if path is None:
        path = blobs.local_path(asset.hash)
    if path is None:
        raise ThumbnailJobError(f"the bytes of asset {asset_id} are not available anywhere")
    if path.stat().st_size > MAX_THUMBNAIL_INPUT:
        raise SkipJob(f"{path} is larger than {MAX_THUMBNAIL_INPUT} bytes")
    data = path.read_bytes()
    if hash_bytes(data) != asset.hash:
        raise ThumbnailJobError(f"{path} changed since it was scanned; waiting for a rescan")
    try:
        thumb = make_thumbnail(io.BytesIO(data), size)
    except ThumbnailError as exc:
        raise SkipJob(str(exc)) from exc
    return store_thumbnail(catalog, blobs, asset_id, thumb)


def store_thumbnail(catalog: Catalog, blobs: BlobStore, asset_id: str, thumb: bytes) -> str:
    """Store thumbnail bytes as a blob and make them the asset's thumbnail; returns the hash."""
    stored = blobs.put_bytes(thumb)
    with catalog.write() as tx:
        known = tx.conn.execute(
            select(schema.blobs.c.hash).where(schema.blobs.c.hash == stored.hash)
        ).first()
        if known is None:
            tx.conn.execute(
                schema.blobs.insert().values(
                    hash=stored.hash, size=stored.size, role="thumbnail", created_at=now_ms()
                )
            )
        set_thumbnail(tx, asset_id, stored.hash)
    return stored.hash


def make_thumbnails(catalog: Catalog, blobs: BlobStore, asset_ids: list[str]) -> int:
    """Run one thumbnail job: every asset of it that has no thumbnail yet gets one.

    Idempotent, so a job retried after a crash or a partial failure redoes only what is
    missing. Assets that cannot have a thumbnail are skipped; if any failed in a way a later
    attempt may fix, the job fails (retryable) after doing all the others. Returns how many
    thumbnails were made.
    """
    with catalog.read() as conn:
        rows = conn.execute(
            select(schema.assets.c.id, schema.assets.c.thumb_hash).where(
                schema.assets.c.id.in_(asset_ids)
            )
        ).all()
    todo = [r.id for r in rows if r.thumb_hash is None]
    made = 0
    retry: list[str] = []
    for asset_id in todo:
        try:
            make_asset_thumbnail(catalog, blobs, asset_id)
            made += 1
        except SkipJob as exc:
            log.info("no thumbnail for asset %s: %s", asset_id, exc)
            continue
        except ThumbnailJobError as exc:
            retry.append(f"{asset_id}: {exc}")
    if retry:
        raise ThumbnailJobError(
            f"{len(retry)} of {len(todo)} thumbnails failed: " + "; ".join(retry[:5])
        )
    return made
