"""The ComfyUI connector: `/history` for metadata, `/view` for bytes, `/ws` as a live hint.

Followed: ComfyUI `server.py` (routes `/history`, `/view`, `/ws`) and `execution.py`
(`PromptQueue.get_history`, `task_done`). What shapes the design:

- `/history` has no cursor and no total: `max_items=K` gives the newest K entries (oldest →
  newest), `offset` counts from the oldest; history lives in memory, is capped (the oldest entry
  is dropped silently past 10,000), emptied by a restart and clearable by anyone. So an entry
  leaving `/history` is never a deletion (`complete_listing = False`: no sweep), and:
- an incremental pass polls the newest K entries and widens K (×4) until the window reaches a
  prompt id we already hold — the cursor remembers the newest ids processed — or holds all of
  history (a cleared or restarted server);
- a full pass (the periodic reconcile) walks history from the oldest with `offset` pages; the
  cursor is `(offset, last prompt id)` and each page re-reads the previous last id to detect
  that eviction shifted the offsets (then it steps back until it finds it again).
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import aiohttp

from gallerysync.errors import MalformedResponseError, RemoteError
from gallerysync.sources.base import (
    ItemRef,
    ListMode,
    Page,
    RemoteItem,
    decode_cursor,
    encode_cursor,
)
from gallerysync.sources.comfyui.history import ParsedEntry, parse_history
from gallerysync.sources.http import HttpByteStream, get_body, open_stream

__all__ = ["ComfyUISource"]

log = logging.getLogger(__name__)
ENTITY = "image"
KNOWN_IDS = 64  # newest prompt ids remembered in the cursor
FIRST_WINDOW = 64
FULL_PAGE = 250  # history entries per full-pass page (each holds a graph and a workflow)


class ComfyUISource:
    kind: ClassVar[str] = "comfyui"
    entity_types: ClassVar[tuple[str, ...]] = (ENTITY,)
    tombstones: ClassVar[bool] = False
    complete_listing: ClassVar[bool] = False  # eviction and restarts are not deletions

    def __init__(self, url: str, session: aiohttp.ClientSession, *, include_temp: bool) -> None:
        self.url = url
        self.session = session
        self.include_temp = include_temp
        self._window: list[ParsedEntry] = []  # an incremental window not yet handed out
        self.page_size = FULL_PAGE

    async def close(self) -> None:
        pass

    # --- listing ---------------------------------------------------------------------------

    async def _history(self, **params: int) -> list[ParsedEntry]:
        body = await get_body(
            self.session,
            f"{self.url}/history",
            params={k: str(v) for k, v in params.items()},
            what=f"ComfyUI {self.url}/history",
        )
        return parse_history(body, include_temp=self.include_temp)

    async def list_page(
        self, entity_type: str, cursor: str | None, *, mode: ListMode, since: int | None
    ) -> Page:
        if entity_type != ENTITY:
            raise ValueError(f"ComfyUI has no entity type {entity_type!r}")
        state = decode_cursor(cursor)
        if mode == ListMode.FULL:
            return await self._full_page(state)
        return await self._incremental_page(state, since)

    def _page(
        self, entries: list[ParsedEntry], known: list[str], state: dict[str, Any], *, done: bool
    ) -> Page:
        """The page of these entries; its cursor is `state` plus the newest prompt ids held."""
        items: dict[str, RemoteItem] = {}
        refused: list[str] = []
        for entry in entries:
            refused.extend(r.reason for r in entry.refused)
            for item in entry.items:
                items.pop(item.remote_id, None)
                items[item.remote_id] = item  # a later prompt wins: it is the newer version
            known = [*known, entry.prompt_id][-KNOWN_IDS:]
        return Page(
            list(items.values()), encode_cursor({**state, "known": known}), done, tuple(refused)
        )

    async def _incremental_page(self, state: dict[str, Any], since: int | None) -> Page:
        known = [str(k) for k in state.get("known", [])]
        if not self._window or state.get("window_after") != (known[-1] if known else None):
            self._window = await self._new_entries(set(known), since)
        take, self._window = self._window[: self.page_size], self._window[self.page_size :]
        following = take[-1].prompt_id if take else (known[-1] if known else None)
        next_state = {"window_after": following} if self._window else {}
        return self._page(take, known, next_state, done=not self._window)

    async def _new_entries(self, known: set[str], since: int | None) -> list[ParsedEntry]:
        """The entries after the newest one we hold: widen the newest-K window until it reaches
        a known prompt id, an entry older than `since`, or the start of history."""
        size = FIRST_WINDOW
        while True:
            window = await self._history(max_items=size)
            start = None
            for index in range(len(window) - 1, -1, -1):
                entry = window[index]
                if entry.prompt_id in known or (since is not None and _older_than(entry, since)):
                    start = index + 1
                    break
            if start is not None:
                return window[start:]
            if len(window) < size:
                return window  # all of history, none of it known: cleared, restarted, or new
            size *= 4

    async def _full_page(self, state: dict[str, Any]) -> Page:
        offset = int(state.get("offset", 0))
        last = state.get("last")
        known = [str(k) for k in state.get("known", [])]
        if last is None:
            entries = await self._history(offset=offset, max_items=self.page_size)
        else:
            entries, offset = await self._after(str(last), offset)
        next_offset = offset + len(entries)
        following: dict[str, Any] = {"offset": next_offset}
        if entries:
            following["last"] = entries[-1].prompt_id
        elif last is not None:
            following["last"] = last
        return self._page(entries, known, following, done=len(entries) < self.page_size)

    async def _after(self, last: str, offset: int) -> tuple[list[ParsedEntry], int]:
        """The page following prompt `last`, which was at `offset - 1`; returns the entries and
        the offset of the first of them. Eviction shifts offsets down: step back until `last`
        is found again, or until offset 0 (then it was evicted, and all of history is newer)."""
        back = 1
        while True:
            start = max(0, offset - back)
            window = await self._history(offset=start, max_items=self.page_size + (offset - start))
            ids = [e.prompt_id for e in window]
            if last in ids:
                index = ids.index(last) + 1
                return window[index : index + self.page_size], start + index
            if start == 0:
                return window[: self.page_size], 0
            back = max(back * 4, self.page_size)

    async def change_count(self, entity_type: str, cursor: str | None) -> int | None:
        """0 when the newest history entry is one we hold (smart sync skips); None otherwise.
        An empty history is 0: evictions and restarts are not changes we mirror."""
        known = set(decode_cursor(cursor).get("known", []))
        newest = await self._history(max_items=1)
        if not newest:
            return 0
        return 0 if newest[-1].prompt_id in known else None

    # --- bytes -----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def open_bytes(self, ref: ItemRef) -> AsyncIterator[HttpByteStream]:
        meta = ref.meta
        try:
            params = {
                "filename": str(meta["filename"]),
                "subfolder": str(meta.get("subfolder", "")),
                "type": str(meta.get("type", "output")),
            }
        except KeyError as exc:
            raise MalformedResponseError(
                f"origin {ref.remote_id} has no {exc} in its meta"
            ) from exc
        async with open_stream(
            self.session,
            f"{self.url}/view",
            params=params,
            etag=ref.etag,
            what=f"ComfyUI /view {ref.remote_id}",
        ) as stream:
            yield stream

    # --- live hints ------------------------------------------------------------------------

    async def live_hints(self) -> AsyncIterator[str]:
        """`/ws` with a fresh clientId per connection (a reused id makes ComfyUI stop sending
        to the newer socket) and no `Origin` header (a mismatched one is refused with 403).
        Other clients' prompts reach us only as `status` messages: yield when the queue
        length changes, and once on connect (we may have missed prompts while away)."""
        ws_url = self.url.replace("http", "ws", 1) + f"/ws?clientId={uuid.uuid4().hex}"
        try:
            async with self.session.ws_connect(ws_url, heartbeat=30, autoping=True) as ws:
                yield "change"
                last_remaining: object = None
                async for message in ws:
                    if message.type != aiohttp.WSMsgType.TEXT:
                        continue
                    with contextlib.suppress(ValueError, AttributeError, TypeError):
                        data = json.loads(message.data)
                        if data.get("type") != "status":
                            continue
                        status = data["data"]["status"]["exec_info"]["queue_remaining"]
                        if status != last_remaining:
                            last_remaining = status
                            yield "change"
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RemoteError(f"ComfyUI {self.url}/ws: {type(exc).__name__}: {exc}") from exc


def _older_than(entry: ParsedEntry, since: int) -> bool:
    return entry.created_at is not None and entry.created_at < since
