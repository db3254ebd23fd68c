"""The push endpoints in-process: `POST /api/assets/check` and the streaming `POST /api/assets`.

Failure cases covered: wrong hash (422, nothing stored), a body shorter than announced (400),
oversized (413 before a byte is read), no Content-Length (411), path traversal and control
characters in the relative path (400), bytes that are not an image (415), another user's
copy never reported as `exists`.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gallerysync.api.app import create_app
from gallerysync.blobs.hashing import hash_bytes
from gallerysync.blobs.local import LocalBlobStore
from gallerysync.catalog import Catalog
from gallerysync.catalog.users import add_user, create_token
from gallerysync.events.hub import ChangeHub
from tests.helpers import image_bytes


class Server:
    """One app on a real catalog and blob store; each call runs in its own event loop."""

    def __init__(self, catalog: Catalog, root: Path, *, max_bytes: int = 1 << 30) -> None:
        self.catalog = catalog
        self.blobs = LocalBlobStore(root / "blobs")
        self.max_bytes = max_bytes

    def call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async def run() -> httpx.Response:
            app = create_app(
                self.catalog,
                ChangeHub(asyncio.get_running_loop()),
                blobs=self.blobs,
                heartbeat_seconds=1,
                upload_max_bytes=self.max_bytes,
            )
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                return await client.request(method, url, **kwargs)

        return asyncio.run(run())

    def upload(
        self,
        data: bytes,
        path: str = "shoot/a.jpg",
        *,
        announced: str | None = None,
        device: str = "laptop",
        token: str | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        headers = {
            "X-Content-Hash": announced or hash_bytes(data),
            "X-Relative-Path": urllib.parse.quote(path),
            "X-Device": device,
            "Content-Type": "application/octet-stream",
            **({"Authorization": f"Bearer {token}"} if token else {}),
            **kwargs.pop("headers", {}),
        }
        return self.call(
            "POST", "/api/assets", content=kwargs.pop("content", data), headers=headers
        )

    def blob_files(self) -> list[Path]:
        root = self.blobs.root
        return [
            p
            for p in root.rglob("*")
            if p.is_file() and p.name != "layout" and p.relative_to(root).parts[0] != "tmp"
        ]


@pytest.fixture
def server(sqlite_catalog: Catalog, tmp_path: Path) -> Server:
    return Server(sqlite_catalog, tmp_path)


def test_upload_creates_then_duplicate(server: Server) -> None:
    data = image_bytes(1)
    first = server.upload(data)
    assert first.status_code == 201, first.text
    assert first.json()["status"] == "created"
    asset_id = first.json()["asset_id"]
    again = server.upload(data, "elsewhere/b.jpg", device="desktop")
    assert again.status_code == 200 and again.json() == {
        "status": "duplicate",
        "asset_id": asset_id,
        "previous_asset_id": None,
    }
    shown = server.call("GET", f"/api/assets/{asset_id}").json()
    assert shown["hash"] == hash_bytes(data) and shown["format"] == "JPEG"
    assert sorted(o["path"] for o in shown["origins"]) == [
        "desktop/elsewhere/b.jpg",
        "laptop/shoot/a.jpg",
    ]
    original = server.call("GET", f"/api/assets/{asset_id}/original")
    assert original.content == data
    assert len(server.blob_files()) == 1


def test_known_bytes_are_not_read(server: Server) -> None:
    """A duplicate known up front is answered without consuming the body."""
    data = image_bytes(2)
    assert server.upload(data).status_code == 201
    consumed: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        consumed.append(1)
        yield data

    length = {"Content-Length": str(len(data))}
    answer = server.upload(data, "again.jpg", content=body(), headers=length)
    assert answer.status_code == 200 and answer.json()["status"] == "duplicate"
    assert consumed == []


def test_wrong_hash_is_refused_and_nothing_stored(server: Server) -> None:
    data = image_bytes(3)
    answer = server.upload(data, announced=hash_bytes(b"something else"))
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "blob_integrity"
    assert server.blob_files() == []
    assert list((server.blobs.root / "tmp").iterdir()) == []
    assert server.call("GET", "/api/assets").json()["assets"] == []


def test_short_body_is_refused(server: Server) -> None:
    data = image_bytes(4)

    async def short() -> AsyncIterator[bytes]:
        yield data[:-10]

    answer = server.upload(data, content=short(), headers={"Content-Length": str(len(data))})
    assert answer.status_code in (400, 422)  # 400 incomplete (or the transport's own refusal)
    assert server.blob_files() == []


def test_oversized_is_refused_before_reading(sqlite_catalog: Catalog, tmp_path: Path) -> None:
    small = Server(sqlite_catalog, tmp_path, max_bytes=100)
    consumed: list[int] = []
    data = image_bytes(5)

    async def body() -> AsyncIterator[bytes]:
        consumed.append(1)
        yield data

    answer = small.upload(data, content=body(), headers={"Content-Length": str(len(data))})
    assert answer.status_code == 413
    assert "upload limit of 100" in answer.json()["error"]["message"]
    assert consumed == []


def test_upload_needs_content_length(server: Server) -> None:
    data = image_bytes(6)

    async def body() -> AsyncIterator[bytes]:
        yield data

    answer = server.upload(data, content=body())  # chunked: no Content-Length
    assert answer.status_code == 411


@pytest.mark.parametrize(
    "path",
    ["../../etc/passwd.jpg", "/abs/a.jpg", "a/../b.jpg", "a//b.jpg", "a\\b.jpg", "a\nb.jpg", ""],
)
def test_unsafe_paths_are_refused(server: Server, path: str) -> None:
    answer = server.upload(image_bytes(7), path)
    assert answer.status_code in (400, 422), answer.text
    assert server.blob_files() == []


def test_not_an_image_is_refused(server: Server) -> None:
    assert server.upload(b"not a jpeg at all", "x.jpg").status_code == 415
    assert server.upload(image_bytes(8), "notes.txt").status_code == 415
    truncated = image_bytes(9, size=(400, 300))[:-200]
    assert server.upload(truncated, "cut.jpg").status_code == 415
    assert server.blob_files() == []


def test_changed_file_is_a_new_version(server: Server) -> None:
    old = server.upload(image_bytes(10), "shot.jpg").json()["asset_id"]
    new = server.upload(image_bytes(11), "shot.jpg").json()
    assert new["status"] == "created" and new["previous_asset_id"] == old
    assert server.call("GET", f"/api/assets/{old}/original").content == image_bytes(10)
    assert server.call("GET", f"/api/assets/{new['asset_id']}/original").content == image_bytes(11)


def test_check_answers_per_item(server: Server) -> None:
    have, trashed, lacking = image_bytes(12), image_bytes(13), image_bytes(14)
    server.upload(have, "have.jpg")
    trashed_id = server.upload(trashed, "trashed.jpg").json()["asset_id"]
    server.call("DELETE", f"/api/assets/{trashed_id}")
    items = [
        {"id": "a", "hash": hash_bytes(have), "size": len(have)},
        {"id": "b", "hash": hash_bytes(trashed), "size": len(trashed)},
        {"id": "c", "hash": hash_bytes(lacking), "size": len(lacking)},
    ]
    results = server.call("POST", "/api/assets/check", json={"items": items}).json()["results"]
    assert [r["status"] for r in results] == ["exists", "exists", "missing"]
    assert [r["id"] for r in results] == ["a", "b", "c"]
    assert results[1]["trashed"] is True and results[1]["asset_id"] == trashed_id
    assert results[0]["trashed"] is False


def test_check_takes_a_thousand_items_and_no_more(server: Server) -> None:
    items = [{"id": str(i), "hash": f"{i:064x}", "size": 1} for i in range(1000)]
    answer = server.call("POST", "/api/assets/check", json={"items": items})
    assert answer.status_code == 200 and len(answer.json()["results"]) == 1000
    items.append({"id": "x", "hash": "f" * 64, "size": 1})
    assert server.call("POST", "/api/assets/check", json={"items": items}).status_code == 422
    bad = [{"id": "x", "hash": "../../x", "size": 1}]
    assert server.call("POST", "/api/assets/check", json={"items": bad}).status_code == 422


def test_users_never_see_each_others_uploads(server: Server) -> None:
    alice, bob = add_user(server.catalog, "alice"), add_user(server.catalog, "bob")
    alice_token, _ = create_token(server.catalog, alice.id)
    bob_token, _ = create_token(server.catalog, bob.id)
    data = image_bytes(15)
    made = server.upload(data, token=alice_token)
    assert made.status_code == 201
    item = [{"id": "1", "hash": hash_bytes(data), "size": len(data)}]
    as_bob = server.call(
        "POST",
        "/api/assets/check",
        json={"items": item},
        headers={"Authorization": f"Bearer {bob_token}"},
    )
    assert as_bob.json()["results"][0]["status"] == "missing"
    bob_upload = server.upload(data, token=bob_token)
    assert bob_upload.status_code == 201  # bob's own asset, not alice's
    assert bob_upload.json()["asset_id"] != made.json()["asset_id"]
    mine = server.call(
        "GET", "/api/assets", headers={"Authorization": f"Bearer {bob_token}"}
    ).json()["assets"]
    assert [a["id"] for a in mine] == [bob_upload.json()["asset_id"]]


def test_upload_source_is_listed_and_not_synced(server: Server) -> None:
    server.upload(image_bytes(16))
    listed = server.call("GET", "/api/sources").json()["sources"]
    [upload] = [s for s in listed if s["kind"] == "upload"]
    assert upload["name"].startswith("upload:") and upload["counts"]["present"] == 1
    answer = server.call("POST", f"/api/sources/{upload['id']}/sync")
    assert answer.status_code == 409 and "push" in answer.json()["error"]["message"]
