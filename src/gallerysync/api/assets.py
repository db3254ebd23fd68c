"""Assets: keyset-paginated list, one asset, original bytes, thumbnail, trash and restore.

Paths are never taken from a request: an asset id (validated as a UUID) is looked up in the
catalog, and the bytes come from where the catalog says they are (on-demand discovery finds
files that moved) or from the content-addressed blob store.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import uuid
from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi import Path as PathParam
from starlette.responses import FileResponse, Response

from gallerysync.api.context import ApiContext, OrjsonBytes, context, page_key
from gallerysync.catalog.assets import asset_summaries, find_asset_ids, get_asset, set_trashed
from gallerysync.catalog.sources import find_source
from gallerysync.errors import InvalidInputError, NotFoundError
from gallerysync.sync.folder import find_asset_file
from gallerysync.sync.thumbnails import SkipJob, make_asset_thumbnail

__all__ = ["router"]

router = APIRouter(prefix="/api/assets", tags=["assets"])
Ctx = Annotated[ApiContext, Depends(context)]
AssetId = Annotated[str, PathParam(min_length=36, max_length=36)]
MAX_LIST = 500
EntityFilter = Annotated[list[str] | None, Query(max_length=36, description="entity id")]
IMMUTABLE = "public, max-age=31536000, immutable"


def _check_id(asset_id: str) -> str:
    try:
        return str(uuid.UUID(asset_id))
    except ValueError as exc:
        raise InvalidInputError(f"not an asset id: {asset_id!r}") from exc


def _encode_cursor(created_at: int, asset_id: str) -> str:
    return base64.urlsafe_b64encode(f"{created_at}|{asset_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        created, asset_id = (
            base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split("|")
        )
        return int(created), _check_id(asset_id)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidInputError("not a page cursor") from exc


def _owned(ctx: ApiContext, asset_id: str) -> dict[str, Any]:
    """The asset's summary, if it belongs to the caller; otherwise 404 (not 403: another
    user's asset ids are not even confirmed to exist)."""
    with ctx.catalog.read() as conn:
        asset = get_asset(conn, _check_id(asset_id))
        if asset.owner_id != ctx.owner_id:
            raise NotFoundError(f"no asset with id {asset_id}")
        return asset_summaries(conn, [asset.id])[0]


@router.get("", response_class=OrjsonBytes)
async def list_assets(
    ctx: Ctx,
    request: Request,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 100,
    source: Annotated[str | None, Query(max_length=200, description="name or id")] = None,
    status: Annotated[str | None, Query(pattern="^(present|missing|trashed)$")] = None,
    q: Annotated[str | None, Query(max_length=200, description="text in paths/format")] = None,
    created_from: Annotated[int | None, Query(ge=0, description="ms since epoch")] = None,
    created_to: Annotated[int | None, Query(ge=0, description="ms since epoch")] = None,
    tag: EntityFilter = None,
    person: EntityFilter = None,
    studio: EntityFilter = None,
    collection: EntityFilter = None,
    group: EntityFilter = None,
) -> Response:
    """The caller's assets, newest first: `{"assets": [summary…], "next": cursor|null}`.
    Follow `next` until it is null. `tag`, `person`, `studio`, `collection`, `group`: entity
    ids (`GET /api/entities`, repeatable): assets linked to all of them, directly or through
    a collection they are in. (Cached pages are answered by `app.CachedPages` before
    this route runs; here the page is read and stored.)"""
    head = ctx.hub.head  # taken before reading: a write racing the read makes the entry stale

    def run() -> bytes:
        with ctx.catalog.read() as conn:
            source_id = find_source(conn, source, ctx.owner_id).id if source else None
            keys = find_asset_ids(
                conn,
                owner_id=ctx.owner_id,
                source_id=source_id,
                status=status,
                text=q,
                created_from=created_from,
                created_to=created_to,
                entity_ids=[
                    _check_id(e)
                    for chosen in (tag, person, studio, collection, group)
                    for e in chosen or ()
                ],
                before=_decode_cursor(cursor) if cursor else None,
                limit=limit + 1,
            )
            page = keys[:limit]
            items = asset_summaries(conn, [k[1] for k in page])
        more = len(keys) > limit
        return orjson.dumps({"assets": items, "next": _encode_cursor(*page[-1]) if more else None})

    body = await asyncio.to_thread(run)
    ctx.pages.put(page_key(ctx.owner_id, request), head, body)
    return OrjsonBytes(body)


@router.get("/{asset_id}")
async def get_one(ctx: Ctx, asset_id: AssetId) -> dict[str, Any]:
    return await asyncio.to_thread(_owned, ctx, asset_id)


@router.get("/{asset_id}/original", response_model=None)
async def original(
    ctx: Ctx,
    asset_id: AssetId,
    if_none_match: Annotated[str | None, Header(max_length=200)] = None,
) -> Response:
    """The asset's bytes (Range requests supported; ETag is the content hash)."""
    summary = await asyncio.to_thread(_owned, ctx, asset_id)
    etag = f'"{summary["hash"]}"'
    if summary["hash"] and if_none_match and etag in [t.strip() for t in if_none_match.split(",")]:
        return Response(status_code=304, headers={"ETag": etag})
    summary, path = await _bytes_of(ctx, summary)
    etag = f'"{summary["hash"]}"'
    if path is None:
        raise NotFoundError(f"the bytes of asset {asset_id} are not available (missing)")
    return FileResponse(
        path,
        media_type=summary["mime"] or "application/octet-stream",
        headers={"ETag": etag, "Cache-Control": "private, max-age=3600"},
        content_disposition_type="inline",
    )


async def _bytes_of(ctx: ApiContext, summary: dict[str, Any]) -> tuple[dict[str, Any], Path | None]:
    """Where the asset's bytes are: its file in a storage dir, else the blob store, else —
    for a remote asset whose policy allows it — fetched from its source now (the request waits
    for the download)."""
    path: Path | None = await asyncio.to_thread(find_asset_file, ctx.catalog, summary["id"])
    if path is None and summary["hash"]:
        path = ctx.blobs.local_path(summary["hash"])
    if path is None and ctx.fetch_asset is not None and await ctx.fetch_asset(summary["id"]):
        summary = await asyncio.to_thread(_owned, ctx, summary["id"])
        path = ctx.blobs.local_path(summary["hash"]) if summary["hash"] else None
    return summary, path


@router.get("/{asset_id}/thumbnail", response_model=None)
async def thumbnail(
    ctx: Ctx,
    asset_id: AssetId,
    if_none_match: Annotated[str | None, Header(max_length=200)] = None,
) -> Response:
    """A 256 px WebP, made now if the background job has not made it yet."""
    summary = await asyncio.to_thread(_owned, ctx, asset_id)

    def stored() -> str | None:
        with ctx.catalog.read() as conn:
            existing = get_asset(conn, summary["id"]).thumb_hash
        return existing if existing and ctx.blobs.exists(existing) else None

    made = await asyncio.to_thread(stored)
    if made is None and summary["hash"] is None and ctx.fetch_thumbnail is not None:
        # On demand: the source's own thumbnail first (no original fetched for a tile)
        made = await ctx.fetch_thumbnail(summary["id"])
    if made is None and summary["hash"] is None:  # a remote asset without bytes here
        summary, _path = await _bytes_of(ctx, summary)

    def thumb_hash() -> str:
        if made is not None:
            return made
        try:
            return make_asset_thumbnail(ctx.catalog, ctx.blobs, summary["id"])
        except SkipJob as exc:
            raise NotFoundError(f"asset {asset_id} has no thumbnail: {exc}") from exc

    digest = await asyncio.to_thread(thumb_hash)
    etag = f'"{digest}"'
    if if_none_match and etag in [t.strip() for t in if_none_match.split(",")]:
        return Response(status_code=304, headers={"ETag": etag})
    path = ctx.blobs.local_path(digest)
    if path is None:
        raise NotFoundError(f"thumbnail of asset {asset_id} is missing from the blob store")
    return FileResponse(
        path, media_type="image/webp", headers={"ETag": etag, "Cache-Control": IMMUTABLE}
    )


@router.delete("/{asset_id}")
async def trash(ctx: Ctx, asset_id: AssetId) -> dict[str, Any]:
    """Move to the trash (restorable; files on disk are not touched)."""
    return await asyncio.to_thread(_set_trashed, ctx, asset_id, True)


@router.post("/{asset_id}/restore")
async def restore(ctx: Ctx, asset_id: AssetId) -> dict[str, Any]:
    return await asyncio.to_thread(_set_trashed, ctx, asset_id, False)


def _set_trashed(ctx: ApiContext, asset_id: str, trashed: bool) -> dict[str, Any]:
    checked = _check_id(asset_id)
    with ctx.catalog.write() as tx:
        if not set_trashed(tx, checked, ctx.owner_id, trashed):
            raise NotFoundError(f"no asset with id {asset_id}")
    return _owned(ctx, checked)
