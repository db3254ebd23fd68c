"""The shared conformance suite: every registered remote source kind, against a real server.

What the engine relies on: a full pass lists every item exactly once across pages; a pass can
resume from any cursor it handed out; the final cursor is a watermark that lists nothing new
when nothing changed (and a change count of 0, for sources with one); bytes arrive complete and
revalidate with their ETag; a malformed reply is a `MalformedResponseError`, an unreachable
server a `RemoteError`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gallerysync.blobs.hashing import new_hasher
from gallerysync.errors import MalformedResponseError, RemoteError
from gallerysync.sources.base import (
    ItemRef,
    ListMode,
    Page,
    RemoteSource,
    SupportsChangeCount,
    capabilities_of,
)
from gallerysync.sources.http import new_session
from gallerysync.sources.registry import get_kind, kinds
from tests.helpers import free_port
from tests.sources.conformance.harnesses import HARNESSES, Harness

PAGE = 7


def _connect(kind: str, options: dict[str, object], session: object) -> RemoteSource:
    connector = get_kind(kind).connect(dict(options), session)
    if hasattr(connector, "page_size"):
        connector.page_size = PAGE  # several pages from a small fixture
    return connector


async def _pass(
    connector: RemoteSource, etype: str, cursor: str | None, mode: ListMode
) -> tuple[list[Page], list[str | None]]:
    pages: list[Page] = []
    cursors: list[str | None] = [cursor]
    for _ in range(10_000):
        page = await connector.list_page(etype, cursor, mode=mode, since=None)
        pages.append(page)
        cursor = page.cursor
        cursors.append(cursor)
        if page.done:
            return pages, cursors
    raise AssertionError("the pass never ended")


def _ids(pages: list[Page]) -> list[str]:
    return [item.remote_id for page in pages for item in page.items if not item.deleted]


@pytest.fixture(params=sorted(kinds()))
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_every_registered_kind_has_a_harness() -> None:
    assert set(kinds()) <= set(HARNESSES), "add a harness in tests/sources/conformance"
    assert {"comfyui", "peer", "stash"} <= set(kinds())  # found through the entry points


def test_conformance(kind: str, tmp_path: Path) -> None:
    with HARNESSES[kind](tmp_path) as harness:
        asyncio.run(_check(kind, harness))


async def _check(kind: str, harness: Harness) -> None:
    async with new_session() as session:
        connector = _connect(kind, harness.options, session)
        assert type(connector).kind == kind
        caps = capabilities_of(connector)
        assert connector.entity_types and all(isinstance(t, str) for t in connector.entity_types)
        etype = connector.entity_types[-1]

        # A full pass: every expected item exactly once, over several pages.
        pages, cursors = await _pass(connector, etype, None, ListMode.FULL)
        listed = _ids(pages)
        assert len(pages) > 1
        if not harness.repeats:
            assert sorted(set(listed)) == sorted(listed), "an item listed twice in one pass"
        assert set(harness.expected) <= set(listed)
        for page in pages:
            for item in page.items:
                assert isinstance(item.version, str) and item.version
                assert item.deleted or item.name

        # Resume from every cursor the pass handed out: the rest, nothing skipped.
        for index in range(1, len(cursors) - 1):
            fresh = _connect(kind, harness.options, session)
            rest, _ = await _pass(fresh, etype, cursors[index], ListMode.FULL)
            assert set(_ids(pages[:index])) | set(_ids(rest)) == set(listed), index

        # The final cursor is a watermark: nothing new when nothing changed…
        watermark = cursors[-1]
        quiet, _ = await _pass(connector, etype, watermark, ListMode.INCREMENTAL)
        assert set(_ids(quiet)) <= set(listed)
        assert not set(_ids(quiet)) - set(listed)
        if caps.change_counts:
            assert isinstance(connector, SupportsChangeCount)
            assert await connector.change_count(etype, watermark) == 0
        # …and the new item when one appears.
        await asyncio.to_thread(harness.add_item)
        later, _ = await _pass(connector, etype, watermark, ListMode.INCREMENTAL)
        assert set(_ids(later)) - set(listed), "a new item was not listed after the watermark"
        if caps.change_counts:
            assert isinstance(connector, SupportsChangeCount)
            assert await connector.change_count(etype, watermark) != 0

        # Bytes: complete, as expected, and revalidated by their ETag.
        items = {i.remote_id: i for p in pages for i in p.items}
        for remote_id, expected_hash in list(harness.expected.items())[:5]:
            ref = ItemRef(remote_id, items[remote_id].meta)
            async with connector.open_bytes(ref) as stream:
                assert not stream.not_modified
                hasher = new_hasher()
                async for chunk in stream.chunks():
                    hasher.update(chunk)
                etag = stream.etag
            assert hasher.hexdigest() == expected_hash
            if harness.validators:
                assert etag
                async with connector.open_bytes(ItemRef(remote_id, ref.meta, etag)) as again:
                    assert again.not_modified

        # A malformed reply names its problem; an unreachable server is retryable.
        if harness.break_next_listing is not None:
            harness.break_next_listing()
            with pytest.raises(MalformedResponseError):
                await connector.list_page(etype, None, mode=ListMode.FULL, since=None)
        await connector.close()
        down = dict(harness.options) | {"url": f"http://127.0.0.1:{free_port()}"}
        unreachable = _connect(kind, down, session)
        with pytest.raises(RemoteError):
            await unreachable.list_page(etype, None, mode=ListMode.FULL, since=None)
