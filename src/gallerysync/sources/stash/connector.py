"""The Stash connector: GraphQL `find*` queries for metadata, `/image/<id>/image` for bytes, and
`scanCompleteSubscribe` as a live hint.

Followed (quotes and commits in docs/research/stash-api.md): `graphql/schema/schema.graphql`,
`graphql/schema/types/*.graphql`, `pkg/sqlite/sql.go` (`validateSort`,
`getTimestampWhereClause`), `pkg/sqlite/image.go` (`setImageSortAndPagination`, `FindMany`),
`pkg/models/find_filter.go`, `pkg/sqlite/tag.go` (`Merge`), `pkg/gallery/update.go`,
`pkg/session/session.go` (`ApiKey`), gqlgen's websocket transports. What shapes the design:

- Every listing sorts by `id` ASC: without a sort, images, galleries and scenes come back in no
  defined order and pages skip or repeat rows. Pages are numbered, so a row deleted before our
  position shifts the rest by one: a pass whose `count` changed between pages is *disturbed*
  and does not advance the watermark (the next pass lists the same window again — upserts are
  idempotent); an id listing that changed while it was read is read again, and fails rather
  than feed a sweep a short list.
- `updated_at > value` is a TEXT comparison against RFC 3339 strings in the server's local
  time at second precision. The watermark is the server's own newest `updated_at`, sent back
  without offset or fraction (`2026-11-21T10:00:05`), which also returns that whole second
  again: the overlap is absorbed by digest versions (an unchanged node costs no write), and
  the watermark remembers the digests of the items in that second so a smart check can tell
  "only what we already have" from a change. Our clock is never used.
- `per_page: 0` returns only `count` (smart sync, totals); `per_page: -1` is never used.
- Things that change without the item's `updated_at` moving — a gallery's images (only the
  gallery is bumped), tag merges and deletes (links rewritten or removed in place) — are
  handled by the engine's dependants step through `list_linked` (images of changed galleries)
  and `fetch_items` (items that linked to a changed or deleted entity).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import aiohttp
import orjson

from gallerysync.domain import RemoteEntity, RemoteItem
from gallerysync.errors import MalformedResponseError, RemoteError, RemoteRefusedError
from gallerysync.sources.base import ItemRef, ListMode, Page, decode_cursor, encode_cursor
from gallerysync.sources.http import HttpByteStream, open_stream, status_error, transport_error
from gallerysync.sources.stash.parse import (
    ENTITY_TYPES,
    FIELDS,
    KINDS,
    PLURAL,
    Parsed,
    digest,
    parse_node,
)

__all__ = ["StashSource"]

log = logging.getLogger(__name__)
PAGE_SIZE = 500
ID_PAGE_SIZE = 2000
SMART_PEEK = 200  # a smart check fetches at most this many changed items to compare digests
AT_LIMIT = 1000  # digests remembered for the watermark's second
_UNSAFE_NAME = re.compile(r"[/\\\x00-\x1f\x7f]|^\.\.?$")
_FILTER_ARG = {t: f"{t}_filter" for t in ENTITY_TYPES}


def _second(text: str) -> str:
    """`2026-11-21T10:00:05+02:00` → `2026-11-21T10:00:05`: the local second, as Stash compares."""
    return text[:19]


def _find(etype: str) -> str:
    plural = PLURAL[etype]
    return "find" + plural[0].upper() + plural[1:]


def _find_one(etype: str) -> str:
    return "find" + etype[0].upper() + etype[1:]


class StashSource:
    kind: ClassVar[str] = "stash"
    entity_types: ClassVar[tuple[str, ...]] = ENTITY_TYPES
    tombstones: ClassVar[bool] = False
    # Pages are numbered: a concurrent delete can shift one row past a pass, so a full pass is
    # not trusted as a complete listing — deletions come from the checked id listing instead.
    complete_listing: ClassVar[bool] = False
    organises: ClassVar[bool] = True

    def __init__(self, url: str, api_key: str | None, session: aiohttp.ClientSession) -> None:
        self.url = url
        self.api_key = api_key
        self.session = session
        self.page_size = PAGE_SIZE
        self.id_page_size = ID_PAGE_SIZE
        self._totals: dict[str, int] = {}
        self.requests = 0

    async def close(self) -> None:
        pass

    # --- GraphQL ---------------------------------------------------------------------------

    @property
    def _headers(self) -> dict[str, str]:
        return {"ApiKey": self.api_key} if self.api_key else {}

    async def query(self, text: str, what: str) -> dict[str, Any]:
        """POST one query; the `data` object, or the error the reply means."""
        self.requests += 1
        target = f"Stash {self.url}/graphql ({what})"
        try:
            async with self.session.post(
                f"{self.url}/graphql", json={"query": text}, headers=self._headers
            ) as response:
                body = await response.read()
                if response.status == 401:
                    raise RemoteRefusedError(
                        f"{target}: HTTP 401 — the API key is missing or wrong (--api-key; "
                        "Stash: Settings → Security → API Key)",
                        http_status=401,
                    )
                if response.status >= 400 and response.status != 422:
                    raise status_error(response, body, target)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise transport_error(target, exc) from exc
        try:
            reply = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise MalformedResponseError(f"{target}: the reply is not JSON ({exc})") from exc
        if not isinstance(reply, dict):
            raise MalformedResponseError(f"{target}: the reply should be an object")
        errors = reply.get("errors")
        if errors:
            messages = "; ".join(
                str(e.get("message")) if isinstance(e, dict) else str(e) for e in errors
            )
            raise RemoteRefusedError(f"{target}: {messages}", http_status=response.status)
        data = reply.get("data")
        if not isinstance(data, dict):
            raise MalformedResponseError(f"{target}: the reply has no data object")
        return data

    def _listing(
        self,
        etype: str,
        *,
        page: int,
        per_page: int,
        criteria: dict[str, Any] | None,
        fields: str,
        alias: str = "r",
    ) -> str:
        find = {"page": page, "per_page": per_page, "sort": "id", "direction": "ASC"}
        args = f"filter: {_gql(find)}"
        if criteria:
            args += f", {_FILTER_ARG[etype]}: {_gql(criteria)}"
        return f"{alias}: {_find(etype)}({args}) {{ count {PLURAL[etype]} {{ {fields} }} }}"

    async def _page(
        self, etype: str, page: int, criteria: dict[str, Any] | None, what: str
    ) -> tuple[int, list[Any]]:
        """One page of full nodes, sorted by id: `(count, nodes)`."""
        listing = self._listing(
            etype, page=page, per_page=self.page_size, criteria=criteria, fields=FIELDS[etype]
        )
        data = await self.query("{ " + listing + " }", f"{_find(etype)} {what}")
        return self._result(data, etype)

    @staticmethod
    def _result(data: dict[str, Any], etype: str, alias: str = "r") -> tuple[int, list[Any]]:
        result = data.get(alias)
        if not isinstance(result, dict):
            raise MalformedResponseError(f"{_find(etype)} should return an object")
        count = result.get("count")
        nodes = result.get(PLURAL[etype])
        if not isinstance(count, int) or count < 0:
            raise MalformedResponseError(f"{_find(etype)}.count should be a count")
        if not isinstance(nodes, list):
            raise MalformedResponseError(f"{_find(etype)}.{PLURAL[etype]} should be a list")
        return count, nodes

    def _parse(self, etype: str, nodes: list[Any]) -> tuple[list[Parsed], list[str]]:
        items: list[Parsed] = []
        refused: list[str] = []
        for i, node in enumerate(nodes):
            item = parse_node(etype, node, f"{_find(etype)}.{PLURAL[etype]}[{i}]")
            if isinstance(item, RemoteItem) and _UNSAFE_NAME.search(item.name):
                refused.append(f"{item.remote_id}: unsafe file name {item.name!r}")
                continue
            items.append(item)
        return items, refused

    # --- listing ---------------------------------------------------------------------------

    async def list_page(
        self, entity_type: str, cursor: str | None, *, mode: ListMode, since: int | None
    ) -> Page:
        if entity_type not in ENTITY_TYPES:
            raise ValueError(f"Stash has no entity type {entity_type!r}")
        state = decode_cursor(cursor)
        if mode == ListMode.FULL:
            if state.get("m") != "full":
                state = {"m": "full", "page": 1}
        elif state.get("m") != "inc":
            if state.get("m") == "mark":
                after = state.get("since")
            elif since is not None:
                after = await self._since_text(entity_type, since)
            else:
                after = None
            state = {"m": "inc", "page": 1, "since": after, "at": state.get("at") or {}}
        page = int(state.get("page", 1))
        after = state.get("since")
        criteria = {"updated_at": {"value": after, "modifier": "GREATER_THAN"}} if after else None
        count, nodes = await self._page(entity_type, page, criteria, f"page {page}")
        items, refused = self._parse(entity_type, nodes)
        first = state.get("count")
        disturbed = bool(state.get("disturbed")) or (first is not None and first != count)
        newest, at = state.get("max"), dict(state.get("at_pass") or {})
        for node in nodes:  # parse_node has checked id and updated_at of each
            second = _second(str(node["updated_at"]))
            if newest is None or second > newest:
                newest, at = second, {}
            if second == newest:
                at[f"{entity_type}:{node['id']}"] = digest(node)
        done = len(nodes) < self.page_size or page * self.page_size >= count
        if not done:
            following = {
                **state,
                "page": page + 1,
                "count": count if first is None else first,
                "disturbed": disturbed,
                "max": newest,
                "at_pass": at,
            }
            return Page(items, encode_cursor(following), False, tuple(refused))
        return Page(
            items,
            encode_cursor(self._watermark(state, newest, at, disturbed)),
            True,
            tuple(refused),
        )

    @staticmethod
    def _watermark(
        state: dict[str, Any], newest: str | None, at: dict[str, str], disturbed: bool
    ) -> dict[str, Any]:
        """The next pass starts after the newest `updated_at` this pass saw — unless rows moved
        under it (then from where this pass started; a full pass: from the beginning)."""
        if disturbed:
            keep = state.get("since") if state.get("m") == "inc" else None
            return {"m": "mark", "since": keep, "at": None}
        if newest is None:  # nothing listed: the previous watermark stands
            return {"m": "mark", "since": state.get("since"), "at": state.get("at")}
        if state.get("m") == "inc" and state.get("since") == newest:
            at = {**(state.get("at") or {}), **at}  # the same second again: keep both
        return {"m": "mark", "since": newest, "at": at if len(at) <= AT_LIMIT else None}

    async def _since_text(self, etype: str, since_ms: int) -> str | None:
        """`--since T` in the server's local time (its offset learnt from its own newest
        `updated_at`), one second early: Stash compares text, so we must write what it
        stores. None when the server has no rows of this type (list everything)."""
        data = await self.query(
            "{ r: "
            + _find(etype)
            + '(filter: {per_page: 1, sort: "updated_at", direction: DESC}) { count '
            + PLURAL[etype]
            + " { updated_at } } }",
            f"{_find(etype)} newest",
        )
        _count, nodes = self._result(data, etype)
        if not nodes:
            return None
        sample = str(nodes[0].get("updated_at"))
        try:
            offset = dt.datetime.fromisoformat(sample).utcoffset()
        except ValueError as exc:
            raise MalformedResponseError(f"updated_at should be RFC 3339, not {sample!r}") from exc
        zone = dt.timezone(offset or dt.timedelta(0))
        moment = dt.datetime.fromtimestamp(since_ms / 1000, zone) - dt.timedelta(seconds=1)
        return moment.strftime("%Y-%m-%dT%H:%M:%S")

    async def change_count(self, entity_type: str, cursor: str | None) -> int | None:
        """Rows changed after the watermark, in one request with the type's total. Rows in
        the watermark's own second come back every time (Stash compares `>` on text at second
        precision): when all of them are ones we hold with the same digest, that is 0."""
        state = decode_cursor(cursor)
        if state.get("m") != "mark":
            return None
        after = state.get("since")
        if after is None:  # the last pass saw no rows: anything there now is a change
            total = await self.total(entity_type)
            self._totals[entity_type] = total
            return total
        criteria = {"updated_at": {"value": after, "modifier": "GREATER_THAN"}}
        data = await self.query(
            "{ "
            + self._listing(
                entity_type,
                page=1,
                per_page=SMART_PEEK,
                criteria=criteria,
                fields=FIELDS[entity_type],
            )
            + " total: "
            + _find(entity_type)
            + "(filter: {per_page: 0}) { count } }",
            f"{_find(entity_type)} changes",
        )
        count, nodes = self._result(data, entity_type)
        reply = data.get("total")
        if isinstance(reply, dict) and isinstance(reply.get("count"), int):
            self._totals[entity_type] = int(reply["count"])
        else:
            raise MalformedResponseError(f"{_find(entity_type)}.count should be a count")
        if count == 0:
            return 0
        known = state.get("at")
        if not isinstance(known, dict) or count > len(nodes):
            return count
        for i, node in enumerate(nodes):
            item = parse_node(entity_type, node, f"{_find(entity_type)}[{i}]")
            if known.get(item.remote_id) != digest(node):
                return count
        return 0

    async def total(self, entity_type: str) -> int:
        cached = self._totals.pop(entity_type, None)
        if cached is not None:
            return cached
        data = await self.query(
            "{ r: " + _find(entity_type) + "(filter: {per_page: 0}) { count } }",
            f"{_find(entity_type)} count",
        )
        result = data.get("r")
        if not isinstance(result, dict) or not isinstance(result.get("count"), int):
            raise MalformedResponseError(f"{_find(entity_type)}.count should be a count")
        return int(result["count"])

    async def list_ids(self, entity_type: str) -> AsyncIterator[str]:
        """Every id, sorted, read page by page — and read again if the set changed while it
        was read (its `count` moved, or the pages do not add up to it): a sweep must never be
        fed a list that skipped a row."""
        for _attempt in range(3):
            ids: list[str] = []
            first: int | None = None
            page = 1
            steady = True
            while True:
                data = await self.query(
                    "{ "
                    + self._listing(
                        entity_type,
                        page=page,
                        per_page=self.id_page_size,
                        criteria=None,
                        fields="id",
                    )
                    + " }",
                    f"{_find(entity_type)} ids page {page}",
                )
                count, nodes = self._result(data, entity_type)
                first = count if first is None else first
                steady = steady and count == first
                for i, node in enumerate(nodes):
                    if not isinstance(node, dict) or not str(node.get("id", "")).isdigit():
                        raise MalformedResponseError(
                            f"{_find(entity_type)}.{PLURAL[entity_type]}[{i}].id should be a number"
                        )
                    ids.append(f"{entity_type}:{node['id']}")
                if len(nodes) < self.id_page_size or page * self.id_page_size >= count:
                    break
                page += 1
            if steady and len(set(ids)) == first == len(ids):
                for key in ids:
                    yield key
                return
            log.info("%s ids changed while they were listed; listing again", entity_type)
        raise RemoteError(f"Stash {entity_type} ids kept changing while they were listed")

    async def fetch_items(self, entity_type: str, remote_ids: list[str]) -> list[Parsed]:
        """These rows now, one aliased single lookup each (`findImages(ids:)` fails the whole
        query for one missing id); a row that is gone comes back as a deleted item."""
        if not remote_ids:
            return []
        numbers = [k.partition(":")[2] for k in remote_ids]
        parts = [
            f'i{i}: {_find_one(entity_type)}(id: "{n}") {{ {FIELDS[entity_type]} }}'
            for i, n in enumerate(numbers)
            if n.isdigit()
        ]
        data = await self.query("{ " + " ".join(parts) + " }", f"{len(parts)} {entity_type}s")
        found: list[Parsed] = []
        for i, key in enumerate(remote_ids):
            node = data.get(f"i{i}")
            if node is None:
                if entity_type in ("image", "scene"):
                    found.append(RemoteItem(key, "", "", deleted=True))
                else:
                    found.append(RemoteEntity(key, KINDS[entity_type], "", "", deleted=True))
                continue
            item = parse_node(entity_type, node, f"{_find_one(entity_type)}({key})")
            if isinstance(item, RemoteItem) and _UNSAFE_NAME.search(item.name):
                continue
            found.append(item)
        return found

    async def list_linked(self, entity_type: str, targets: list[str], cursor: str | None) -> Page:
        """Images (or scenes) in galleries that changed: a gallery's membership moves only the
        gallery's `updated_at`. Other keys cannot be queried by and are left to `fetch_items`."""
        galleries = sorted({t.partition(":")[2] for t in targets if t.startswith("gallery:")})
        if entity_type not in ("image", "scene") or not galleries:
            return Page([], None, True)
        page = int(decode_cursor(cursor).get("page", 1))
        criteria = {"galleries": {"value": galleries, "modifier": "INCLUDES"}}
        what = f"in {len(galleries)} galleries, page {page}"
        count, nodes = await self._page(entity_type, page, criteria, what)
        items, refused = self._parse(entity_type, nodes)
        done = len(nodes) < self.page_size or page * self.page_size >= count
        return Page(
            items, None if done else encode_cursor({"page": page + 1}), done, tuple(refused)
        )

    # --- bytes -----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def open_bytes(self, ref: ItemRef) -> AsyncIterator[HttpByteStream]:
        """`/image/<id>/image` or `/scene/<id>/stream` on the configured server — built from our
        own base URL, never from the URL in the reply (which could point anywhere)."""
        etype, _, number = ref.remote_id.partition(":")
        if not number.isdigit() or etype not in ("image", "scene"):
            raise MalformedResponseError(f"{ref.remote_id} is not a Stash image or scene")
        path = f"/image/{number}/image" if etype == "image" else f"/scene/{number}/stream"
        async with open_stream(
            self.session,
            self.url + path,
            etag=ref.etag,
            headers=self._headers,
            what=f"Stash {path}",
        ) as stream:
            yield stream

    @contextlib.asynccontextmanager
    async def open_thumbnail(self, ref: ItemRef) -> AsyncIterator[HttpByteStream]:
        """`paths.thumbnail` (`/image/<id>/thumbnail`) or a scene's `paths.screenshot`."""
        etype, _, number = ref.remote_id.partition(":")
        if not number.isdigit() or etype not in ("image", "scene"):
            raise MalformedResponseError(f"{ref.remote_id} is not a Stash image or scene")
        path = f"/image/{number}/thumbnail" if etype == "image" else f"/scene/{number}/screenshot"
        async with open_stream(
            self.session, self.url + path, headers=self._headers, what=f"Stash {path}"
        ) as stream:
            yield stream

    # --- live hints ------------------------------------------------------------------------

    async def live_hints(self) -> AsyncIterator[str]:
        """`scanCompleteSubscribe` over `graphql-transport-ws`; yields once on connect (scans
        may have finished while we were away) and whenever a scan or clean job completes."""
        ws_url = self.url.replace("http", "ws", 1) + "/graphql"
        try:
            async with self.session.ws_connect(
                ws_url, protocols=("graphql-transport-ws",), headers=self._headers, heartbeat=30
            ) as ws:
                await ws.send_str(json.dumps({"type": "connection_init", "payload": {}}))
                sub_id = uuid.uuid4().hex
                subscribed = False
                async for message in ws:
                    if message.type != aiohttp.WSMsgType.TEXT:
                        continue
                    with contextlib.suppress(ValueError, AttributeError):
                        frame = json.loads(message.data)
                        kind = frame.get("type")
                        if kind == "connection_ack" and not subscribed:
                            await ws.send_str(
                                json.dumps(
                                    {
                                        "id": sub_id,
                                        "type": "subscribe",
                                        "payload": {"query": SUBSCRIPTION},
                                    }
                                )
                            )
                            subscribed = True
                            yield "change"
                        elif kind == "ping":
                            await ws.send_str(json.dumps({"type": "pong"}))
                        elif kind in ("next", "data") and frame.get("id") == sub_id:
                            yield "change"
                        elif kind == "error":
                            raise RemoteError(f"Stash subscription refused: {frame.get('payload')}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RemoteError(f"Stash {ws_url}: {type(exc).__name__}: {exc}") from exc


def _gql(value: Any) -> str:
    """A Python value as a GraphQL input literal (enum values are the known modifiers)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_gql(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_gql(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value in _ENUMS:
        return value
    return json.dumps(str(value))


SUBSCRIPTION = "subscription { scanCompleteSubscribe }"
_ENUMS = frozenset({"ASC", "DESC", "GREATER_THAN", "INCLUDES", "LESS_THAN", "EQUALS"})
