"""The HTTP application (FastAPI; OpenAPI at `/api/openapi.json`, docs at `/api/docs`).

One module per resource: `feed` (the change feed, pages and SSE), `assets`, `sources`
(with sync runs, jobs and the storage inspector). Every error leaves as one JSON shape,
`{"error": {"code", "message", "detail"}}`, with the status its class declares.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gallerysync import __version__
from gallerysync.api import assets, auth, entities, feed, sources, uploads
from gallerysync.api.context import (
    ApiContext,
    OrjsonBytes,
    OrjsonResponse,
    app_context,
    page_key,
    resolve_caller,
)
from gallerysync.blobs.local import LocalBlobStore
from gallerysync.catalog import Catalog
from gallerysync.errors import GallerySyncError, PayloadTooLargeError
from gallerysync.events.hub import ChangeHub
from gallerysync.sync.upload import UploadReceiver

__all__ = ["OrjsonResponse", "create_app"]
MAX_BODY_BYTES = 64 * 1024
DEFAULT_UPLOAD_MAX_BYTES = 2 << 30
# Routes whose bodies may be larger: the bulk hash check (1,000 items), and the upload, which
# streams to disk and enforces the configured upload limit itself (None: not limited here).
ROUTE_BODY_LIMITS: dict[tuple[str, str], int | None] = {
    ("POST", "/api/assets/check"): 1024 * 1024,
    ("POST", "/api/assets"): None,
}

WEB_ROOT = Path(__file__).resolve().parent.parent / "web" / "static"


class BodyLimit:
    """Refuse request bodies over `max_bytes` with 413 before a route reads them: declared
    lengths up front, chunked bodies as they arrive (no client decides how much we buffer)."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        routes: dict[tuple[str, str], int | None] | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.routes = routes or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.routes.get((scope["method"], scope["path"]), self.max_bytes)
        if limit is None:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await self._refuse(scope, receive, send, limit)
            return
        seen = 0
        refused = False

        async def limited() -> Message:
            # Over the limit: answer 413 here and tell the app the client left, so whatever
            # the app then tries to send is dropped.
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request" and not refused:
                seen += len(message.get("body", b""))
                if seen > limit:
                    refused = True
                    await self._refuse(scope, receive, send, limit)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not refused:
                await send(message)

        await self.app(scope, limited, guarded_send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        error = PayloadTooLargeError(f"request body over {limit} bytes")
        response = OrjsonResponse(error_body(error.code, str(error)), status_code=error.status)
        await response(scope, receive, send)


class CachedPages:
    """Serve a list page straight from the page cache, before routing and parameter parsing
    (which cost as much as the rest of the request). Misses, errors and anything that is
    not a plain GET of a cached path go through the app as usual."""

    PATHS = frozenset({"/api/assets"})

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"] in self.PATHS:
            request = Request(scope)
            try:
                caller = await resolve_caller(app_context(request), request)
            except GallerySyncError:
                caller = None  # the app answers with the proper error
            if caller is not None:
                body = caller.pages.get(page_key(caller.owner_id, request), caller.hub.head)
                if body is not None:
                    await OrjsonBytes(body)(scope, receive, send)
                    return
                request.state.caller = caller  # a miss: the route needs no second lookup
        await self.app(scope, receive, send)


def error_body(code: str, message: str, detail: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "detail": detail}}


def create_app(
    catalog: Catalog,
    hub: ChangeHub,
    *,
    blobs: LocalBlobStore,
    heartbeat_seconds: float,
    auth_required: bool = False,
    health_details: Callable[[], dict[str, Any]] | None = None,
    start_sync: Callable[[str, str], None] | None = None,
    fetch_asset: Callable[[str], Awaitable[bool]] | None = None,
    fetch_thumbnail: Callable[[str], Awaitable[str | None]] | None = None,
    upload_max_bytes: int = DEFAULT_UPLOAD_MAX_BYTES,
) -> FastAPI:
    """Build the app. With `auth_required` every API request needs a token or a session;
    without it, requests that carry no credentials act as the catalog's local owner."""
    app = FastAPI(
        title="gallerysync",
        version=__version__,
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        default_response_class=OrjsonResponse,
    )
    app.state.ctx = ApiContext(
        catalog=catalog,
        hub=hub,
        blobs=blobs,
        heartbeat_seconds=heartbeat_seconds,
        owner_id=catalog.default_owner_id,
        health_details=health_details,
        start_sync=start_sync,
        fetch_asset=fetch_asset,
        fetch_thumbnail=fetch_thumbnail,
        auth_required=auth_required,
        uploads=UploadReceiver(catalog, blobs),
        upload_max_bytes=upload_max_bytes,
    )
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES, routes=ROUTE_BODY_LIMITS)
    app.add_middleware(CachedPages)
    app.state.fanout = feed.FeedFanout(catalog, hub)

    @app.exception_handler(GallerySyncError)
    async def domain_error(_request: Request, exc: GallerySyncError) -> OrjsonResponse:
        return OrjsonResponse(error_body(exc.code, str(exc)), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> OrjsonResponse:
        detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in exc.errors()]
        return OrjsonResponse(
            error_body("invalid_input", "the request does not validate", detail),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> OrjsonResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return OrjsonResponse(error_body(code, str(exc.detail)), status_code=exc.status_code)

    app.include_router(auth.router)
    app.include_router(feed.router)
    app.include_router(uploads.router)
    app.include_router(assets.router)
    app.include_router(sources.router)
    app.include_router(entities.router)
    app.mount("/", StaticFiles(directory=WEB_ROOT, html=True), name="web")
    return app
