"""Sources (add, list, remove, sync now), sync runs, jobs and the storage inspector."""

from __future__ import annotations

import asyncio
import functools
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from gallerysync.api.context import ApiContext, context
from gallerysync.catalog.jobs import job_counts, list_jobs
from gallerysync.catalog.remote import fetch_counts
from gallerysync.catalog.runs import list_runs
from gallerysync.catalog.sources import (
    find_source,
    get_storage_dir,
    list_sources,
    origin_counts,
    remove_source,
)
from gallerysync.catalog.uploads import UPLOAD_KIND
from gallerysync.domain import Source
from gallerysync.errors import ConflictError, ForbiddenError, InvalidInputError
from gallerysync.maintenance import inspect_storage
from gallerysync.sync.folder import add_folder
from gallerysync.sync.remote import add_remote_source

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["sources"])
Ctx = Annotated[ApiContext, Depends(context)]


class NewSource(BaseModel):
    kind: str = Field(
        pattern="^[a-z][a-z0-9_-]{0,31}$", description="folder, comfyui, peer, stash…"
    )
    path: str | None = Field(
        default=None, min_length=1, max_length=4096, description="folder: a directory here"
    )
    url: str | None = Field(
        default=None, min_length=1, max_length=2048, description="remote kinds: the server"
    )
    name: str | None = Field(default=None, min_length=1, max_length=200)
    download: str = Field(default="auto", pattern="^(auto|on-demand|off)$")
    include_temp: bool = False
    token: str | None = Field(default=None, min_length=1, max_length=200, description="peer")
    api_key: str | None = Field(default=None, min_length=1, max_length=500, description="stash")


class SyncRequest(BaseModel):
    mode: str = Field(default="smart", pattern="^(smart|full)$")


def _source_json(ctx: ApiContext, source: Source) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": source.id,
        "name": source.name,
        "kind": source.kind,
        "status": source.status.value,
        "status_detail": source.status_detail,
        "created_at": source.created_at,
    }
    with ctx.catalog.read() as conn:
        body["counts"] = origin_counts(conn, source.id)
        runs = list_runs(conn, source.id, limit=1)
        body["last_run"] = runs[0].__dict__ if runs else None
        if source.kind == "folder":
            sd = get_storage_dir(conn, source.id)
            body.update(root=sd.root, id_file=sd.id_file_status, last_scan_at=sd.last_scan_at)
        elif source.kind != UPLOAD_KIND:  # never the token: options may hold credentials
            body.update(url=source.options.get("url"), download=source.options.get("download"))
            body["downloads"] = fetch_counts(conn, source.id)
    return body


def _owned_sources(ctx: ApiContext) -> list[Source]:
    with ctx.catalog.read() as conn:
        return [s for s in list_sources(conn) if s.owner_id == ctx.owner_id]


def _one(ctx: ApiContext, name_or_id: str) -> Source:
    with ctx.catalog.read() as conn:
        return find_source(conn, name_or_id, ctx.owner_id)


@router.get("/sources")
async def sources(ctx: Ctx) -> dict[str, Any]:
    def run() -> dict[str, Any]:
        return {"sources": [_source_json(ctx, s) for s in _owned_sources(ctx)]}

    return await asyncio.to_thread(run)


@router.post("/sources", status_code=201)
async def add_source(ctx: Ctx, body: NewSource) -> dict[str, Any]:
    """Add a folder of this machine (its SD_ID file is written or migrated) or a remote
    server (`kind` comfyui, peer or stash, with `url`; `token` for a peer, `api_key` for a
    Stash)."""

    def run() -> dict[str, Any]:
        if body.kind == "folder":
            if body.path is None:
                raise InvalidInputError("a folder source needs `path`")
            return _source_json(
                ctx, add_folder(ctx.catalog, body.path, body.name, owner_id=ctx.owner_id)
            )
        if body.url is None:
            raise InvalidInputError(f"a {body.kind} source needs `url`")
        extra: dict[str, Any] = {}
        if body.include_temp:
            extra["include_temp"] = True
        if body.token is not None:
            extra["token"] = body.token
        if body.api_key is not None:
            extra["api_key"] = body.api_key
        source = add_remote_source(
            ctx.catalog,
            body.kind,
            body.url,
            name=body.name,
            download=body.download,
            owner_id=ctx.owner_id,
            extra=extra,
        )
        return _source_json(ctx, source)

    return await asyncio.to_thread(run)


@router.delete("/sources/{name_or_id}")
async def delete_source(ctx: Ctx, name_or_id: str) -> dict[str, Any]:
    """Remove a source; its assets stay (missing if nothing else has them)."""

    def run() -> dict[str, Any]:
        source = _one(ctx, name_or_id)
        with ctx.catalog.write() as tx:
            missing = remove_source(tx, source)
        return {"removed": source.id, "assets_now_missing": missing}

    return await asyncio.to_thread(run)


@router.post("/sources/{name_or_id}/sync", status_code=202)
async def sync_source(ctx: Ctx, name_or_id: str, body: SyncRequest | None = None) -> dict[str, Any]:
    """Start a sync now; progress and the result arrive through the change feed and
    `GET /api/sync/runs`."""
    source = await asyncio.to_thread(_one, ctx, name_or_id)
    if source.kind == UPLOAD_KIND:
        raise ConflictError("an upload source is filled by push clients; there is nothing to sync")
    if ctx.start_sync is None:
        raise ConflictError("this server cannot run syncs")
    ctx.start_sync(source.id, (body or SyncRequest()).mode)
    return {"source": source.id, "mode": (body or SyncRequest()).mode, "status": "started"}


@router.get("/sync/runs")
async def sync_runs(
    ctx: Ctx,
    source: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    def run() -> dict[str, Any]:
        source_id = _one(ctx, source).id if source else None
        owned = {s.id for s in _owned_sources(ctx)}
        with ctx.catalog.read() as conn:
            runs = list_runs(conn, source_id, limit=limit)
        return {"runs": [r.__dict__ for r in runs if r.source_id in owned]}

    return await asyncio.to_thread(run)


@router.get("/jobs")
async def jobs(
    ctx: Ctx,
    status: Annotated[str | None, Query(pattern="^(pending|running|done|failed)$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    if ctx.owner_id != ctx.catalog.default_owner_id:
        raise ForbiddenError("the job queue is the instance's; only the local owner sees it")

    def run() -> dict[str, Any]:
        with ctx.catalog.read() as conn:
            return {
                "counts": job_counts(conn),
                "jobs": [
                    j.__dict__ | {"status": j.status.value} for j in list_jobs(conn, status, limit)
                ],
            }

    return await asyncio.to_thread(run)


@router.get("/inspect")
async def inspect(ctx: Ctx) -> dict[str, Any]:
    """What `gallerysync inspect` shows: per storage dir, blobs, jobs."""
    return await asyncio.to_thread(
        functools.partial(inspect_storage, ctx.catalog, ctx.blobs, owner_id=ctx.owner_id)
    )
