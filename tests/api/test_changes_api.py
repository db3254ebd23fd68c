"""`GET /api/changes` in-process (httpx.ASGITransport): pages, tokens, bounds, resets."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import httpx

from gallerysync.api.app import create_app
from gallerysync.blobs.local import LocalBlobStore
from gallerysync.catalog import Catalog
from gallerysync.catalog.feed import encode_token
from gallerysync.events.hub import ChangeHub
from gallerysync.sync.folder import FolderScan, add_folder
from tests.helpers import write_image


def _get_all(catalog: Catalog, *paths: str) -> list[httpx.Response]:
    async def run() -> list[httpx.Response]:
        app = create_app(
            catalog,
            ChangeHub(asyncio.get_running_loop()),
            heartbeat_seconds=1,
            blobs=LocalBlobStore(Path(str(catalog.engine.url.database)).parent / "blobs"),
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return [await client.get(p) for p in paths]

    return asyncio.run(run())


def _pages(catalog: Catalog, limit: int, since: str | None = None) -> list[dict[str, Any]]:
    pages = []
    query = f"/api/changes?limit={limit}" + (f"&since={since}" if since else "")
    while True:
        (response,) = _get_all(catalog, query)
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body)
        if body["up_to_date"]:
            return pages
        query = f"/api/changes?limit={limit}&since={body['next']}"


def test_paging_is_complete_and_resumable(sqlite_catalog: Catalog, tmp_path: Path) -> None:
    root = tmp_path / "sd"
    for i in range(12):
        write_image(root / f"{i}.jpg", i)
    source = add_folder(sqlite_catalog, root)
    FolderScan(sqlite_catalog, source).run()
    pages = _pages(sqlite_catalog, limit=5)
    seqs = [c["seq"] for p in pages for c in p["changes"]]
    assert seqs == sorted(set(seqs)) and seqs[0] == 1 and seqs[-1] == sqlite_catalog.head()
    for before, after in itertools.pairwise(pages):
        assert after["covers"][0] == before["covers"][1] == before["next"]
    assets = {c["id"] for p in pages for c in p["changes"] if c["type"] == "asset"}
    assert len(assets) == 12
    last = pages[-1]["next"]
    write_image(root / "late.png", 99)
    FolderScan(sqlite_catalog, source).run()
    (resumed,) = _pages(sqlite_catalog, limit=50, since=last)
    assert [c["data"]["format"] for c in resumed["changes"] if c["type"] == "asset"] == ["PNG"]
    runs = [c["data"] for c in resumed["changes"] if c["type"] == "sync_run"]
    assert runs and runs[-1]["status"] == "ok" and runs[-1]["source_id"] == source.id


def test_since_now_bad_input_and_foreign_tokens(sqlite_catalog: Catalog) -> None:
    foreign = encode_token("another", "catalog", 1)
    now, bad_limit, huge_limit, garbage, reset = _get_all(
        sqlite_catalog,
        "/api/changes?since=now",
        "/api/changes?limit=0",
        "/api/changes?limit=100000",
        "/api/changes?since=../../etc/passwd",
        f"/api/changes?since={foreign}",
    )
    assert now.status_code == 200 and now.json()["changes"] == [] and now.json()["up_to_date"]
    for response in (bad_limit, huge_limit, garbage):
        assert response.status_code == 422
        assert set(response.json()["error"]) == {"code", "message", "detail"}
    assert reset.status_code == 410
    assert reset.json()["error"]["code"] == "reset_required"
