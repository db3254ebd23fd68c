"""The assets and sources API in-process: pages, filters, bytes, thumbnails, trash, bounds."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from gallerysync.blobs.hashing import hash_bytes
from gallerysync.catalog import Catalog
from gallerysync.sync.folder import FolderScan, add_folder
from tests.api.conftest import Call
from tests.helpers import image_bytes, write_image


def _folder(catalog: Catalog, root: Path, count: int) -> dict[str, bytes]:
    files = {
        f"d{i % 2}/img{i}.png": write_image(root / f"d{i % 2}/img{i}.png", i) for i in range(count)
    }
    FolderScan(catalog, add_folder(catalog, root, name="pics")).run()
    return files


def test_list_pages_filters_and_one_asset(
    api: Call, sqlite_catalog: Catalog, tmp_path: Path
) -> None:
    files = _folder(sqlite_catalog, tmp_path / "sd", 9)
    seen, cursor = [], None
    while True:
        response = api(
            "GET", "/api/assets", params={"limit": 4, **({"cursor": cursor} if cursor else {})}
        )
        assert response.status_code == 200
        body = response.json()
        seen += body["assets"]
        cursor = body["next"]
        if cursor is None:
            break
    assert len(seen) == 9 and len({a["id"] for a in seen}) == 9
    assert [a["created_at"] for a in seen] == sorted((a["created_at"] for a in seen), reverse=True)
    assert {a["hash"] for a in seen} == {hash_bytes(b) for b in files.values()}
    only_d1 = api("GET", "/api/assets", params={"q": "d1/"}).json()["assets"]
    assert {a["origins"][0]["path"] for a in only_d1} == {p for p in files if p.startswith("d1/")}
    assert api("GET", "/api/assets", params={"q": "%"}).json()["assets"] == []
    assert len(api("GET", "/api/assets", params={"source": "pics"}).json()["assets"]) == 9
    assert api("GET", "/api/assets", params={"status": "missing"}).json()["assets"] == []
    one = api("GET", f"/api/assets/{seen[0]['id']}").json()
    assert one == seen[0]


def test_original_with_etag_and_range(api: Call, sqlite_catalog: Catalog, tmp_path: Path) -> None:
    files = _folder(sqlite_catalog, tmp_path / "sd", 1)
    (data,) = files.values()
    (asset,) = api("GET", "/api/assets").json()["assets"]
    url = f"/api/assets/{asset['id']}/original"
    full = api("GET", url)
    assert full.status_code == 200 and full.content == data
    assert full.headers["etag"] == f'"{hash_bytes(data)}"'
    assert full.headers["content-type"] == "image/png"
    part = api("GET", url, headers={"Range": "bytes=0-9"})
    assert part.status_code == 206 and part.content == data[:10]
    cached = api("GET", url, headers={"If-None-Match": full.headers["etag"]})
    assert cached.status_code == 304 and cached.content == b""


def test_thumbnail_is_made_on_first_request(
    api: Call, sqlite_catalog: Catalog, tmp_path: Path
) -> None:
    root = tmp_path / "sd"
    root.mkdir()
    (root / "big.jpg").write_bytes(image_bytes(1, "JPEG", (1024, 512)))
    FolderScan(sqlite_catalog, add_folder(sqlite_catalog, root)).run()
    (asset,) = api("GET", "/api/assets").json()["assets"]
    assert asset["thumbnail"] is None
    response = api("GET", f"/api/assets/{asset['id']}/thumbnail")
    assert response.status_code == 200 and response.headers["content-type"] == "image/webp"
    assert "immutable" in response.headers["cache-control"]
    with Image.open(io.BytesIO(response.content)) as thumb:
        assert thumb.size == (256, 128)
    (after,) = api("GET", "/api/assets").json()["assets"]
    assert after["thumbnail"] == f"/api/assets/{asset['id']}/thumbnail"


def test_trash_and_restore(api: Call, sqlite_catalog: Catalog, tmp_path: Path) -> None:
    _folder(sqlite_catalog, tmp_path / "sd", 2)
    first, second = api("GET", "/api/assets").json()["assets"]
    trashed = api("DELETE", f"/api/assets/{first['id']}").json()
    assert trashed["trashed"] is True
    assert [a["id"] for a in api("GET", "/api/assets").json()["assets"]] == [second["id"]]
    in_trash = api("GET", "/api/assets", params={"status": "trashed"}).json()["assets"]
    assert [a["id"] for a in in_trash] == [first["id"]]
    assert (tmp_path / "sd" / first["origins"][0]["path"]).exists()  # files are not touched
    assert api("POST", f"/api/assets/{first['id']}/restore").json()["trashed"] is False
    assert len(api("GET", "/api/assets").json()["assets"]) == 2


def test_bad_input_is_refused_with_one_error_shape(api: Call) -> None:
    cases = {
        "/api/assets/../../etc/passwd": (404,),
        "/api/assets/%2e%2e%2f%2e%2e%2fetc%2fpasswd/original": (404, 422),
        "/api/assets/not-a-uuid-but-thirty-six-characters!/original": (422,),
        "/api/assets/00000000-0000-7000-8000-000000000000": (404,),
        "/api/assets?limit=0": (422,),
        "/api/assets?limit=100000": (422,),
        "/api/assets?status=everything": (422,),
        "/api/assets?cursor=garbage": (422,),
        "/api/assets?q=" + "x" * 500: (422,),
        "/api/nothing-here": (404,),
    }
    for url, statuses in cases.items():
        response = api("GET", url)
        assert response.status_code in statuses, (url, response.status_code, response.text)
        assert set(response.json()["error"]) == {"code", "message", "detail"}, url


def test_sources_api(api: Call, sqlite_catalog: Catalog, tmp_path: Path) -> None:
    root = tmp_path / "new"
    write_image(root / "a.jpg", 1)
    created = api("POST", "/api/sources", json={"kind": "folder", "path": str(root)})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["name"] == "new" and (root / "SD_ID").read_text().strip() == body["id"]
    again = api("POST", "/api/sources", json={"kind": "folder", "path": str(root)})
    assert again.status_code == 409
    bad = api("POST", "/api/sources", json={"kind": "ftp", "path": "/"})
    assert bad.status_code == 422
    assert [s["name"] for s in api("GET", "/api/sources").json()["sources"]] == ["new"]
    started = api("POST", "/api/sources/new/sync", json={"mode": "full"})
    assert started.status_code == 202
    assert api.started == [(body["id"], "full")]  # type: ignore[attr-defined]
    assert api("GET", "/api/inspect").json()["storage_dirs"][0]["source"] == "new"
    assert "counts" in api("GET", "/api/jobs").json()
    assert api("GET", "/api/sync/runs").json() == {"runs": []}
    removed = api("DELETE", "/api/sources/new").json()
    assert removed["removed"] == body["id"]
    assert api("GET", "/api/sources").json()["sources"] == []


def test_openapi_is_served(api: Call) -> None:
    spec = api("GET", "/api/openapi.json").json()
    for path in (
        "/api/changes",
        "/api/changes/stream",
        "/api/assets",
        "/api/assets/{asset_id}/original",
        "/api/sources",
        "/api/inspect",
    ):
        assert path in spec["paths"], path
    assert api("GET", "/api/docs").status_code == 200
