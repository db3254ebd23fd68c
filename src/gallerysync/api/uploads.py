"""Push endpoints: the bulk hash check and the streaming upload (DESIGN §5).

`POST /api/assets/check` answers, for up to 1,000 `{id, hash, size}` items, which bytes the
caller already has. `POST /api/assets` takes one file as the raw request body, streamed into
the blob store (never read into memory), with its BLAKE3 hash in `X-Content-Hash`:

- `201` `{"status": "created", …}` — a new asset;
- `200` `{"status": "duplicate", …}` — the caller already had these bytes (also when two
  uploads race); if it is known before the body is read, the body is not read (a client that
  sends `Expect: 100-continue` then sends no bytes at all);
- `413` before any byte is read when `Content-Length` exceeds the server's limit;
- `422` `blob_integrity` when the bytes do not match the hash; `400` when fewer bytes than
  announced arrive; `415` when they are not a readable image or video — nothing is stored.

Uploads belong to the caller and land in their `upload` source; `X-Relative-Path`
(percent-encoded UTF-8) and `X-Device` are kept as the origin's metadata.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from pydantic import BaseModel, Field
from starlette.requests import ClientDisconnect

from gallerysync.api.context import ApiContext, OrjsonResponse, context
from gallerysync.errors import (
    IncompleteUploadError,
    LengthRequiredError,
    PayloadTooLargeError,
    UnsafePathError,
)
from gallerysync.sync.upload import Upload, check_device, check_rel_path

__all__ = ["MAX_CHECK_ITEMS", "router"]

router = APIRouter(prefix="/api/assets", tags=["push"])
Ctx = Annotated[ApiContext, Depends(context)]
MAX_CHECK_ITEMS = 1000


class CheckItem(BaseModel):
    id: str = Field(min_length=1, max_length=200, description="the client's own key, echoed")
    hash: str = Field(pattern="^[0-9a-f]{64}$", description="BLAKE3-256, lowercase hex")
    size: int = Field(ge=0)


class CheckRequest(BaseModel):
    items: list[CheckItem] = Field(max_length=MAX_CHECK_ITEMS)


@router.post("/check")
async def check(ctx: Ctx, body: CheckRequest) -> dict[str, Any]:
    """Which of these files does the caller already have? Per item, in order:
    `{"id", "status": "exists", "asset_id", "trashed"}` or `{"id", "status": "missing"}`.
    Only the caller's own assets count: another user's copy is `missing` for you."""
    assert ctx.uploads is not None
    states = await asyncio.to_thread(
        ctx.uploads.states, ctx.owner_id, [item.hash for item in body.items]
    )
    results: list[dict[str, Any]] = []
    for item in body.items:
        state = states.get(item.hash)
        if state is None:
            results.append({"id": item.id, "status": "missing"})
        else:
            results.append(
                {
                    "id": item.id,
                    "status": "exists",
                    "asset_id": state.asset_id,
                    "trashed": state.trashed,
                }
            )
    return {"results": results}


def _relative_path(raw: str) -> str:
    try:
        decoded = urllib.parse.unquote(raw, errors="strict")
    except UnicodeDecodeError as exc:
        raise UnsafePathError("X-Relative-Path is not percent-encoded UTF-8") from exc
    return check_rel_path(decoded)


@router.post(
    "",
    status_code=201,
    responses={200: {"description": "duplicate: the caller already had these bytes"}},
)
async def upload(
    ctx: Ctx,
    request: Request,
    x_content_hash: Annotated[str, Header(max_length=64, description="BLAKE3 hex")],
    x_relative_path: Annotated[str, Header(max_length=4096, description="percent-encoded")],
    x_device: Annotated[str, Header(max_length=64)] = "unknown",
    x_file_mtime: Annotated[int | None, Header(ge=0, description="ms since epoch")] = None,
    content_length: Annotated[str | None, Header()] = None,
) -> OrjsonResponse:
    """Upload one file as the raw body (`application/octet-stream`); see the module docs."""
    assert ctx.uploads is not None
    if content_length is None or not content_length.isdigit():
        raise LengthRequiredError("send Content-Length: an upload's size is checked up front")
    size = int(content_length)
    if size > ctx.upload_max_bytes:
        raise PayloadTooLargeError(
            f"{size} bytes is over this server's upload limit of {ctx.upload_max_bytes}"
        )
    pushed = Upload(
        owner_id=ctx.owner_id,
        device=check_device(x_device),
        rel_path=_relative_path(x_relative_path),
        hash=x_content_hash.strip().lower(),
        size=size,
        mtime_ms=x_file_mtime,
    )
    result = await asyncio.to_thread(ctx.uploads.record_duplicate, pushed)
    if result is None:
        try:
            result = await ctx.uploads.receive(pushed, request.stream())
        except ClientDisconnect as exc:
            raise IncompleteUploadError("the client went away mid-upload; nothing stored") from exc
    body = {
        "status": "created" if result.created else "duplicate",
        "asset_id": result.asset_id,
        "previous_asset_id": result.previous_asset_id,
    }
    return OrjsonResponse(body, status_code=201 if result.created else 200)
