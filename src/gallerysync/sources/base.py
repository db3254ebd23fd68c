"""The remote-source interface: what the sync engine needs from a ComfyUI, a peer, a Stash…

A connector implements two required methods — list one page of items of an entity type from a
cursor, and open an item's bytes — and may implement optional capabilities, each its own small
protocol. The engine resolves them once into a `Capabilities` record instead of probing with
`hasattr` at every call site, so what a source can do is visible in one place (and in
`gallerysync source list --json`).

Cursors are opaque strings owned by the connector. The engine stores the cursor that follows a
page in the same transaction as the page's rows, so a killed sync resumes exactly there. The
cursor returned with the last page of a pass (`Page.done`) is the *watermark*: the next
incremental or smart pass starts from it.
"""

from __future__ import annotations

import enum
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

from gallerysync.domain import RemoteEntity, RemoteItem

__all__ = [
    "ByteStream",
    "Capabilities",
    "ItemRef",
    "ListMode",
    "Page",
    "RemoteEntity",
    "RemoteItem",
    "RemoteSource",
    "SupportsChangeCount",
    "SupportsFetchByIds",
    "SupportsIdListing",
    "SupportsLinkedListing",
    "SupportsLiveHints",
    "SupportsThumbnails",
    "SupportsTotals",
    "SupportsUrlRefresh",
    "capabilities_of",
    "decode_cursor",
    "encode_cursor",
]


class ListMode(enum.StrEnum):
    FULL = "full"  # everything the source has (a reconcile)
    INCREMENTAL = "incremental"  # what changed after the cursor (or after `since`)


def encode_cursor(state: dict[str, Any]) -> str:
    """A connector's cursor state as the opaque string the engine stores."""
    return json.dumps(state, separators=(",", ":"), sort_keys=True)


def decode_cursor(cursor: str | None) -> dict[str, Any]:
    """The state of `encode_cursor`; `{}` (start over: upserts are idempotent) for none or for
    a cursor an older version wrote."""
    if not cursor:
        return {}
    try:
        state = json.loads(cursor)
    except ValueError:
        return {}
    return state if isinstance(state, dict) else {}


@dataclass(frozen=True, slots=True)
class Page:
    items: Sequence[RemoteItem | RemoteEntity]  # of one entity type
    cursor: str | None  # pass back to continue; with `done`, the watermark for next time
    done: bool  # nothing follows in this pass
    refused: tuple[str, ...] = ()  # listed but not taken (an unsafe name): why, for the run


@dataclass(frozen=True, slots=True)
class ItemRef:
    """What phase 2 knows of an item when it asks for its bytes."""

    remote_id: str
    meta: dict[str, Any]
    etag: str | None = None  # the validator of the bytes we hold: a 304 means unchanged


class ByteStream(Protocol):
    """An open download: headers are read, the body streams in chunks."""

    etag: str | None
    size: int | None  # Content-Length, when the server sent one
    not_modified: bool  # the server answered 304 to our validator: nothing to read

    def chunks(self) -> AsyncIterator[bytes]: ...


class RemoteSource(Protocol):
    """Required of every remote connector."""

    kind: ClassVar[str]
    entity_types: ClassVar[tuple[str, ...]]  # in dependency order: references resolve
    tombstones: ClassVar[bool]  # pages may carry `deleted` items
    complete_listing: ClassVar[bool]  # a full pass lists all the source has: sweep allowed

    async def list_page(
        self, entity_type: str, cursor: str | None, *, mode: ListMode, since: int | None
    ) -> Page:
        """The next page. `cursor` None starts a pass: from the beginning (FULL) or, for
        INCREMENTAL, from `since` (ms) — a connector may return more than asked, never less."""
        ...

    def open_bytes(self, ref: ItemRef) -> Any:
        """An async context manager yielding a `ByteStream` for the item's bytes. Raises
        `RemoteError` (retry), `RemoteRefusedError` (give up) or `MalformedResponseError`."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class SupportsChangeCount(Protocol):
    async def change_count(self, entity_type: str, cursor: str | None) -> int | None:
        """How many items changed after `cursor`: 0 lets smart sync skip the type; None means
        the source cannot tell (the type is listed)."""
        ...


@runtime_checkable
class SupportsIdListing(Protocol):
    def list_ids(self, entity_type: str) -> AsyncIterator[str]:
        """Every remote id the source has now, for deletion detection by id-set difference."""
        ...


@runtime_checkable
class SupportsLiveHints(Protocol):
    def live_hints(self) -> AsyncIterator[str]:
        """Yields whenever the source may have changed (`"change"`) or lost our position
        (`"reset"`: reconcile fully). Ends when the connection drops; the caller reconnects."""
        ...


@runtime_checkable
class SupportsTotals(Protocol):
    async def total(self, entity_type: str) -> int:
        """How many items of this type the source has now. For sources with typed keys
        (`"image:12"`): equal to what we hold after an incremental pass means nothing was
        deleted, so neither smart sync nor the id-set sweep has to list anything."""
        ...


@runtime_checkable
class SupportsFetchByIds(Protocol):
    async def fetch_items(
        self, entity_type: str, remote_ids: list[str]
    ) -> Sequence[RemoteItem | RemoteEntity]:
        """These items as the source has them now; an id left out no longer exists."""
        ...


@runtime_checkable
class SupportsLinkedListing(Protocol):
    async def list_linked(self, entity_type: str, targets: list[str], cursor: str | None) -> Page:
        """Items of `entity_type` that link to any of these keys now, a page at a time — for
        links that change without the item's own version moving (Stash: a gallery's images).
        Keys the source cannot query by are ignored."""
        ...


@runtime_checkable
class SupportsThumbnails(Protocol):
    def open_thumbnail(self, ref: ItemRef) -> Any:
        """Like `open_bytes`, for the source's own small preview of the item: an on-demand
        gallery can show a tile without fetching the original (Stash: `paths.thumbnail`)."""
        ...


@runtime_checkable
class SupportsUrlRefresh(Protocol):
    async def refresh_ref(self, ref: ItemRef) -> ItemRef:
        """A fresh reference for an item whose download URL expired."""
        ...


@dataclass(frozen=True, slots=True)
class Capabilities:
    change_counts: bool
    id_listing: bool
    tombstones: bool
    live_hints: bool
    url_refresh: bool
    complete_listing: bool
    totals: bool = False
    fetch_by_ids: bool = False
    linked_listing: bool = False
    organises: bool = False  # typed keys; items link to organising entities

    def as_dict(self) -> dict[str, bool]:
        return {name: getattr(self, name) for name in self.__slots__}


def capabilities_of(source: RemoteSource) -> Capabilities:
    """Resolve what a connector can do, once."""
    return Capabilities(
        change_counts=isinstance(source, SupportsChangeCount),
        id_listing=isinstance(source, SupportsIdListing),
        tombstones=bool(type(source).tombstones),
        live_hints=isinstance(source, SupportsLiveHints),
        url_refresh=isinstance(source, SupportsUrlRefresh),
        complete_listing=bool(type(source).complete_listing),
        totals=isinstance(source, SupportsTotals),
        fetch_by_ids=isinstance(source, SupportsFetchByIds),
        linked_listing=isinstance(source, SupportsLinkedListing),
        organises=bool(getattr(type(source), "organises", False)),
    )
