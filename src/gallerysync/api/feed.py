"""Health and the change feed: `GET /api/changes` (pages) and `GET /api/changes/stream` (SSE).

Both share one cursor. The stream is framed by hand on a streaming response (DESIGN §8:
measured faster than sse-starlette under many clients): `?since=` on the first connection,
`Last-Event-ID` after a reconnect; every event carries `id: <token>`; an `up-to-date` event
marks the live point; an idle stream sends a comment heartbeat that also re-reads the head; a
token that cannot be resumed gets `event: reset` with HTTP 200 (a 410 would make a browser's
EventSource give up silently).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from starlette.responses import StreamingResponse

from gallerysync.api.context import ApiContext, app_context, context, resolve_caller
from gallerysync.catalog import Catalog
from gallerysync.catalog.feed import (
    MAX_PAGE,
    FeedPage,
    FeedResetError,
    decode_token,
    encode_token,
    read_page,
)
from gallerysync.errors import UnauthenticatedError
from gallerysync.events.hub import ChangeHub

__all__ = ["FeedFanout", "router"]

router = APIRouter()
STREAM_BATCH = 500
Ctx = Annotated[ApiContext, Depends(context)]


def _token(ctx: ApiContext, seq: int) -> str:
    return encode_token(ctx.catalog.instance_id, ctx.catalog.epoch, seq)


def _resolve_since(ctx: ApiContext, text: str | None) -> int:
    if not text:
        return 0
    if text == "now":
        return ctx.catalog.head()
    return decode_token(text, ctx.catalog)


def _read(ctx: ApiContext, since: int, limit: int) -> FeedPage:
    with ctx.catalog.read() as conn:
        return read_page(conn, scope=ctx.owner_id, since=since, limit=limit)


@router.get("/healthz", tags=["health"])
async def healthz(request: Request) -> dict[str, Any]:
    """Liveness for anyone; with auth off also start-up scan state, sources and job counts
    (with auth on those would show every user's sources, so they are left out)."""
    ctx = app_context(request)
    body: dict[str, Any] = {"status": "ok", "instance": ctx.catalog.instance_id}
    if ctx.health_details is not None and not ctx.auth_required:
        body.update(await asyncio.to_thread(ctx.health_details))
    return body


@router.get("/api/changes", tags=["changes"])
async def changes(
    ctx: Ctx,
    since: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> dict[str, Any]:
    """One page of the change feed after `since` (omitted: the beginning; `now`: the head)."""
    position = await asyncio.to_thread(_resolve_since, ctx, since)
    page = await asyncio.to_thread(_read, ctx, position, limit)
    return {
        "changes": [{**c, "token": _token(ctx, c["seq"])} for c in page.changes],
        "next": _token(ctx, page.covers_to),
        "up_to_date": page.up_to_date,
        "covers": [_token(ctx, page.covers_from), _token(ctx, page.covers_to)],
        "oldest_resumable": _token(ctx, page.oldest_resumable),
    }


@router.get("/api/changes/stream", tags=["changes"], response_class=StreamingResponse)
async def stream(
    ctx: Ctx,
    request: Request,
    since: Annotated[str | None, Query(max_length=64)] = None,
    last_event_id: Annotated[str | None, Header(max_length=64)] = None,
) -> StreamingResponse:
    """The change feed as Server-Sent Events (see docs/api.md)."""
    try:
        position = await asyncio.to_thread(_resolve_since, ctx, last_event_id or since)
    except FeedResetError as exc:
        return _sse(_reset_only(str(exc)))

    async def still_allowed() -> bool:
        if not ctx.authenticated:
            return True
        try:
            return (await resolve_caller(app_context(request), request)).owner_id == ctx.owner_id
        except UnauthenticatedError:
            return False

    return _sse(_events(ctx, request.app.state.fanout, position, still_allowed))


def _retrieve(future: asyncio.Future[SharedPage]) -> None:
    """Mark a failed read's exception as seen (its waiters re-raise it themselves)."""
    if not future.cancelled():
        future.exception()


@dataclass(frozen=True)
class SharedPage:
    """One read of the feed, framed once for every stream: each entry as the full event
    (for its owner) and as the bare `id:` line (for everyone else)."""

    entries: list[tuple[str, bytes, bytes]]  # (scope, change event, id-only event)
    covers_to: int
    up_to_date: bool


class FeedFanout:
    """Streams at the same position share one read and one framing.

    When a commit wakes a thousand streams they all ask for the page after the same cursor;
    the first asks the database, the others await the same future. A finished page is
    reused only while it is still complete up to the head the hub knows (or is a full batch),
    so a stream never gets an older view than reading itself would give; reusing one is also
    safe because entries carry current state and `covers_to` says where the reader is now.
    """

    KEEP = 32

    def __init__(self, catalog: Catalog, hub: ChangeHub) -> None:
        self._catalog = catalog
        self._hub = hub
        self._pages: OrderedDict[int, asyncio.Future[SharedPage]] = OrderedDict()

    async def page(self, since: int) -> SharedPage:
        future = self._pages.get(since)
        if future is None or (future.done() and not self._fresh(future)):
            # A task of its own: a reader that disconnects mid-read cancels only its wait.
            future = asyncio.ensure_future(asyncio.to_thread(self._read, since))
            future.add_done_callback(_retrieve)
            self._pages[since] = future
            self._pages.move_to_end(since)
            while len(self._pages) > self.KEEP:
                self._pages.popitem(last=False)
        return await asyncio.shield(future)

    def _fresh(self, future: asyncio.Future[SharedPage]) -> bool:
        if future.cancelled() or future.exception() is not None:
            return False
        page = future.result()
        return not page.up_to_date or page.covers_to >= self._hub.head

    def _read(self, since: int) -> SharedPage:
        catalog = self._catalog
        with catalog.read() as conn:
            page = read_page(conn, scope=None, since=since, limit=STREAM_BATCH)
        entries = []
        for change, scope in zip(page.changes, page.scopes, strict=True):
            head = f"id: {encode_token(catalog.instance_id, catalog.epoch, change['seq'])}\n"
            entries.append(
                (
                    scope,
                    head.encode()
                    + b"event: change\ndata: "
                    + orjson.dumps(change, option=orjson.OPT_NON_STR_KEYS)
                    + b"\n\n",
                    head.encode() + b"\n",
                )
            )
        return SharedPage(entries, page.covers_to, page.up_to_date)


async def _events(
    ctx: ApiContext,
    fanout: FeedFanout,
    since: int,
    still_allowed: Callable[[], Awaitable[bool]],
) -> AsyncIterator[bytes]:
    yield f"retry: {3000 + random.randint(0, 2000)}\n\n".encode()
    cursor = since
    live = False
    checked = time.monotonic()
    while not ctx.hub.closed:
        if time.monotonic() - checked >= ctx.heartbeat_seconds:
            # A revoked token or an ended session stops an open stream too (within one
            # heartbeat); the client's reconnect then gets its 401.
            if not await still_allowed():
                return
            checked = time.monotonic()
        try:
            page = await fanout.page(cursor)
        except FeedResetError as exc:
            yield _reset_event(str(exc))
            return
        if page.entries:  # another owner's entries only move the cursor: nothing revealed
            yield b"".join(
                full if scope == ctx.owner_id else bare for scope, full, bare in page.entries
            )
        cursor = page.covers_to
        if not page.up_to_date:
            continue
        if not live:
            live = True
            head = _token(ctx, cursor)
            yield (
                f"id: {head}\nevent: up-to-date\ndata: ".encode()
                + orjson.dumps({"head": head})
                + b"\n\n"
            )
        if not await ctx.hub.wait_beyond(cursor, ctx.heartbeat_seconds):
            yield b": heartbeat\n\n"


def _reset_event(reason: str) -> bytes:
    return b"event: reset\ndata: " + orjson.dumps({"reason": reason}) + b"\n\n"


async def _reset_only(reason: str) -> AsyncIterator[bytes]:
    yield _reset_event(reason)


def _sse(body: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(
        body,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
