"""An in-process API client (httpx.ASGITransport) on a real SQLite catalog and blob store."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gallerysync.api.app import create_app
from gallerysync.blobs.local import LocalBlobStore
from gallerysync.catalog import Catalog
from gallerysync.events.hub import ChangeHub

Call = Callable[..., httpx.Response]


@pytest.fixture
def api(sqlite_catalog: Catalog, tmp_path: Path) -> Iterator[Call]:
    """`api("GET", "/api/assets", **httpx kwargs)` → response, through the real app."""
    yield make_call(sqlite_catalog, tmp_path, auth_required=False)


@pytest.fixture
def api_auth(sqlite_catalog: Catalog, tmp_path: Path) -> Iterator[Call]:
    """The same, with `GALLERYSYNC_AUTH=on`: every API request needs credentials."""
    yield make_call(sqlite_catalog, tmp_path, auth_required=True)


def make_call(catalog: Catalog, tmp_path: Path, *, auth_required: bool) -> Call:
    blobs = LocalBlobStore(tmp_path / "blobs")
    started: list[tuple[str, str]] = []

    def call(method: str, url: str, **kwargs: Any) -> httpx.Response:
        async def run() -> httpx.Response:
            app = create_app(
                catalog,
                ChangeHub(asyncio.get_running_loop()),
                blobs=blobs,
                heartbeat_seconds=1,
                auth_required=auth_required,
                start_sync=lambda sid, mode: started.append((sid, mode)),
            )
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                return await client.request(method, url, **kwargs)

        return asyncio.run(run())

    call.started = started  # type: ignore[attr-defined]
    return call
