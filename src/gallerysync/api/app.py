"""The HTTP application: health, the change feed as pages, and the change feed as SSE.

The feed's two endpoints share one cursor. `GET /api/changes` pages; `GET /api/changes/stream`
is Server-Sent Events framed by hand on a streaming response (DESIGN §8: measured faster than
sse-starlette under many clients): `?since=` on the first connection, `Last-Event-ID` after a
reconnect; every event carries `id: <token>`; an `up-to-date` event marks the live point; an
idle stream sends a comment heartbeat that also re-reads the head; a token that cannot be
resumed gets `event: reset` with HTTP 200 (a 410 would make EventSource give up silently).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from gallerysync.catalog import Catalog
from gallerysync.catalog.feed import (
    MAX_PAGE,
    FeedPage,
    FeedResetError,
    decode_token,
    encode_token,
    read_page,
)
from gallerysync.errors import GallerySyncError, InvalidInputError
from gallerysync.events.hub import ChangeHub

__all__ = ["create_app"]

STREAM_BATCH = 500


def _error(exc: GallerySyncError, detail: Any = None) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": exc.code, "message": str(exc), "detail": detail}},
        status_code=exc.status,
    )


def create_app(
    catalog: Catalog,
    hub: ChangeHub,
    *,
    heartbeat_seconds: float,
    health_details: Callable[[], dict[str, Any]] | None = None,
) -> Starlette:
    """Build the ASGI app. `scope`: the local owner (tokens and users arrive with auth)."""
    scope = catalog.default_owner_id

    def token(seq: int) -> str:
        return encode_token(catalog.instance_id, catalog.epoch, seq)

    def resolve_since(text: str | None) -> int:
        if not text:
            return 0
        if text == "now":
            return catalog.head()
        return decode_token(text, catalog)

    def read(since: int, limit: int) -> FeedPage:
        with catalog.read() as conn:
            return read_page(conn, scope=scope, since=since, limit=limit)

    async def healthz(_request: Request) -> Response:
        body: dict[str, Any] = {"status": "ok", "instance": catalog.instance_id}
        if health_details is not None:
            body.update(await asyncio.to_thread(health_details))
        return JSONResponse(body)

    async def changes(request: Request) -> Response:
        try:
            limit_text = request.query_params.get("limit", "100")
            if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_PAGE:
                raise InvalidInputError(f"limit must be an integer from 1 to {MAX_PAGE}")
            since = await asyncio.to_thread(resolve_since, request.query_params.get("since"))
            page = await asyncio.to_thread(read, since, int(limit_text))
        except GallerySyncError as exc:
            return _error(exc)
        return JSONResponse(
            {
                "changes": [{**c, "token": token(c["seq"])} for c in page.changes],
                "next": token(page.covers_to),
                "up_to_date": page.up_to_date,
                "covers": [token(page.covers_from), token(page.covers_to)],
                "oldest_resumable": token(page.oldest_resumable),
            }
        )

    async def stream(request: Request) -> Response:
        given = request.headers.get("last-event-id") or request.query_params.get("since")
        try:
            since = await asyncio.to_thread(resolve_since, given)
        except FeedResetError as exc:
            return _sse_response(_reset_only(str(exc)))
        except GallerySyncError as exc:
            return _error(exc)
        return _sse_response(events(since))

    async def events(since: int) -> AsyncIterator[str]:
        yield f"retry: {3000 + random.randint(0, 2000)}\n\n"
        cursor = since
        live = False
        while True:
            try:
                page = await asyncio.to_thread(read, cursor, STREAM_BATCH)
            except FeedResetError as exc:
                yield _reset_event(str(exc))
                return
            entries: list[tuple[int, dict[str, Any] | None]] = [
                (c["seq"], c) for c in page.changes
            ] + [(seq, None) for seq in page.hidden]
            for seq, change in sorted(entries, key=lambda e: e[0]):
                if change is None:  # another owner's change: move the cursor, show nothing
                    yield f"id: {token(seq)}\n\n"
                else:
                    yield (
                        f"id: {token(seq)}\nevent: change\n"
                        f"data: {json.dumps(change, separators=(',', ':'))}\n\n"
                    )
            cursor = page.covers_to
            if not page.up_to_date:
                continue
            if not live:
                live = True
                yield (
                    f"id: {token(cursor)}\nevent: up-to-date\n"
                    f"data: {json.dumps({'head': token(cursor)})}\n\n"
                )
            if not await hub.wait_beyond(cursor, heartbeat_seconds):
                yield ": heartbeat\n\n"

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/api/changes", changes),
            Route("/api/changes/stream", stream),
        ]
    )


def _reset_event(reason: str) -> str:
    return f"event: reset\ndata: {json.dumps({'reason': reason})}\n\n"


async def _reset_only(reason: str) -> AsyncIterator[str]:
    yield _reset_event(reason)


def _sse_response(body: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(
        body,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
