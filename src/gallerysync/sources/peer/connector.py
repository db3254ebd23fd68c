"""The peer connector: follow another gallerysync instance's change feed with a token.

Followed: this project's own API (`api/feed.py`, `docs/api.md`). The feed is the listing:

- incremental: `GET /api/changes?since=TOKEN&limit=500` from the watermark token; asset
  upserts become items (the peer's asset id is the remote id, its content hash is announced,
  so bytes we already hold are merged without a download), deletes and trashed assets become
  tombstones; `up_to_date` ends the pass and its `next` token is the watermark;
- full (a reconcile, and the answer to a reset): the feed read from its beginning holds the
  latest state of every asset the peer has, so it is a complete listing and the engine sweeps
  what it no longer lists;
- a token the peer cannot resume (HTTP 410 `reset_required`: restored from a backup, deletes
  expired) raises `SourceResetError`, and the engine runs a full pass;
- bytes: `GET /api/assets/{id}/original`, verified against the announced hash;
- live hints: `GET /api/changes/stream?since=now` (SSE); each change event is a hint, a
  `reset` event asks for a full pass.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import aiohttp

from gallerysync.domain import RemoteItem
from gallerysync.errors import (
    MalformedResponseError,
    RemoteError,
    RemoteRefusedError,
    SourceResetError,
)
from gallerysync.sources.base import ItemRef, ListMode, Page
from gallerysync.sources.http import HttpByteStream, get_json, open_stream

__all__ = ["PeerSource"]

ENTITY = "asset"
PAGE = 500
_EXT = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "TIFF": "tif"}


def _need(value: Any, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise MalformedResponseError(f"peer /api/changes: {where} is missing or has a wrong type")
    return value


class PeerSource:
    kind: ClassVar[str] = "peer"
    entity_types: ClassVar[tuple[str, ...]] = (ENTITY,)
    tombstones: ClassVar[bool] = True
    complete_listing: ClassVar[bool] = True  # the feed from its start lists every asset

    def __init__(self, url: str, token: str, session: aiohttp.ClientSession) -> None:
        self.url = url
        self.session = session
        self._auth = {"Authorization": f"Bearer {token}"}
        self.page_size = PAGE

    async def close(self) -> None:
        pass

    async def _changes(self, since: str | None, limit: int) -> dict[str, Any]:
        params = {"limit": str(limit)}
        if since:
            params["since"] = since
        try:
            body = await get_json(
                self.session,
                f"{self.url}/api/changes",
                params=params,
                headers=self._auth,
                what=f"peer {self.url}/api/changes",
            )
        except RemoteRefusedError as exc:
            if exc.http_status == 410:
                raise SourceResetError(
                    f"peer {self.url} cannot resume our position: {exc}"
                ) from exc
            raise
        return dict(_need(body, dict, "the reply"))

    async def list_page(
        self, entity_type: str, cursor: str | None, *, mode: ListMode, since: int | None
    ) -> Page:
        if entity_type != ENTITY:
            raise ValueError(f"a peer has no entity type {entity_type!r}")
        body = await self._changes(cursor, self.page_size)
        changes = _need(body.get("changes"), list, "changes")
        following = _need(body.get("next"), str, "next")
        up_to_date = _need(body.get("up_to_date"), bool, "up_to_date")
        items: list[RemoteItem] = []
        for index, change in enumerate(changes):
            item = _item(_need(change, dict, f"changes[{index}]"), index)
            if item is None:
                continue
            if since is not None and item.created_at is not None and not item.deleted:
                updated = change.get("data", {}).get("updated_at")
                if isinstance(updated, int) and updated < since:
                    continue
            items.append(item)
        return Page(items, following, up_to_date or not changes)

    async def change_count(self, entity_type: str, cursor: str | None) -> int | None:
        """0 when the peer's feed has nothing after our watermark (one tiny request)."""
        if cursor is None:
            return None
        body = await self._changes(cursor, 1)
        changes = _need(body.get("changes"), list, "changes")
        return 0 if not changes else None

    @contextlib.asynccontextmanager
    async def open_bytes(self, ref: ItemRef) -> AsyncIterator[HttpByteStream]:
        async with open_stream(
            self.session,
            f"{self.url}/api/assets/{ref.remote_id}/original",
            etag=ref.etag,
            headers=self._auth,
            what=f"peer asset {ref.remote_id}",
        ) as stream:
            yield stream

    async def live_hints(self) -> AsyncIterator[str]:
        """The peer's SSE stream from `now`: a hint per change, `reset` when it asks."""
        try:
            async with self.session.get(
                f"{self.url}/api/changes/stream",
                params={"since": "now"},
                headers={**self._auth, "Accept": "text/event-stream"},
                timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
            ) as response:
                if response.status != 200:
                    raise RemoteError(f"peer {self.url} stream: HTTP {response.status}")
                yield "change"  # connected: catch up on what happened while we were away
                async for raw in response.content:
                    line = raw.decode("utf-8", "replace").strip()
                    if line == "event: change":
                        yield "change"
                    elif line == "event: reset":
                        yield "reset"
                        return
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RemoteError(f"peer {self.url} stream: {type(exc).__name__}: {exc}") from exc


def _item(change: dict[str, Any], index: int) -> RemoteItem | None:
    where = f"changes[{index}]"
    if change.get("type") != "asset":
        return None  # the peer's sources and sync runs are its own business
    asset_id = _need(change.get("id"), str, f"{where}.id")
    op = _need(change.get("op"), str, f"{where}.op")
    if op == "delete":
        return RemoteItem(remote_id=asset_id, version="deleted", name="", deleted=True)
    data = _need(change.get("data"), dict, f"{where}.data")
    version = _need(data.get("version"), int, f"{where}.data.version")
    fmt = data.get("format") if isinstance(data.get("format"), str) else None
    origins = data.get("origins") if isinstance(data.get("origins"), list) else []
    paths = [str(o.get("path")) for o in origins if isinstance(o, dict) and o.get("path")]
    name = paths[0].rpartition("/")[2] if paths else f"{asset_id}.{_EXT.get(fmt or '', 'bin')}"
    content_hash = data.get("hash") if isinstance(data.get("hash"), str) else None
    trashed = bool(data.get("trashed"))
    return RemoteItem(
        remote_id=asset_id,
        version=f"{version}{'-trashed' if trashed else ''}",
        name=name,
        created_at=data.get("created_at") if isinstance(data.get("created_at"), int) else None,
        size=data.get("size") if isinstance(data.get("size"), int) else None,
        content_hash=content_hash,
        meta={
            "peer_asset_id": asset_id,
            "peer_version": version,
            "format": fmt,
            "width": data.get("width"),
            "height": data.get("height"),
            "paths": paths,
        },
        deleted=trashed,
    )
