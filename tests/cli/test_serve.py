"""`gallerysync serve` as a real process: start-up scan, live watching, thumbnails, shutdown."""

from __future__ import annotations

import io
import signal
from pathlib import Path

from PIL import Image
from sqlalchemy import select

from gallerysync.blobs.hashing import hash_bytes
from gallerysync.blobs.local import LocalBlobStore
from gallerysync.catalog import Catalog, schema
from tests.helpers import ServeProcess, image_bytes, run_cli, wait_for, write_image


def _assets(home: Path) -> dict[str, tuple[str, str | None]]:
    """path → (status, thumbnail hash) straight from the catalog file."""
    catalog = Catalog.open(f"sqlite:///{home / 'catalog.sqlite3'}")
    try:
        with catalog.read() as conn:
            rows = conn.execute(
                select(
                    schema.origins.c.remote_id, schema.assets.c.status, schema.assets.c.thumb_hash
                ).join(schema.assets, schema.assets.c.id == schema.origins.c.asset_id)
            ).all()
    finally:
        catalog.close()
    return {r[0]: (r[1], r[2]) for r in rows}


def test_serve_scans_watches_makes_thumbnails_and_stops_cleanly(tmp_path: Path) -> None:
    home, root = tmp_path / "home", tmp_path / "pics"
    for i in range(20):
        write_image(root / f"{i}.jpg", i)
    run_cli(home, "source", "add", "folder", str(root))
    serve = ServeProcess(home, env={"GALLERYSYNC_SETTLE_SECONDS": "0.3"})
    try:
        health = serve.wait_healthy()
        assert health["status"] == "ok"
        wait_for(lambda: len(_assets(home)) == 20, what="start-up scan")
        wait_for(
            lambda: (serve.health() or {}).get("sources", [{}])[0].get("watching"), what="watcher"
        )
        big = image_bytes(99, "JPEG", (1200, 800))
        (root / "new.jpg.part").write_bytes(big)
        (root / "new.jpg.part").rename(root / "new.jpg")
        wait_for(lambda: _assets(home).get("new.jpg", (None, None))[1], what="new file + thumb")

        def all_thumbnails() -> dict[str, str | None] | None:
            assets = _assets(home)
            thumbs = {p: t for p, (_s, t) in assets.items()}
            return thumbs if len(thumbs) == 21 and all(thumbs.values()) else None

        thumbs = wait_for(all_thumbnails, what="every thumbnail")
        blobs = LocalBlobStore(home / "blobs")
        for thumb in set(thumbs.values()):
            assert thumb is not None and blobs.verify(thumb)
            with blobs.open(thumb) as handle, Image.open(io.BytesIO(handle.read())) as image:
                assert image.format == "WEBP"
                assert max(image.size) <= 256
        with blobs.open(str(thumbs["new.jpg"])) as handle, Image.open(handle) as image:
            assert image.size == (256, 171)
        assert hash_bytes(big) != thumbs["new.jpg"]
    finally:
        code = serve.stop(signal.SIGTERM)
    assert code == 0, serve.log.read_text()


def test_serve_refuses_non_loopback(tmp_path: Path) -> None:
    result = run_cli(tmp_path / "home", "serve", "--host", "192.0.2.1", check=False)
    assert result.returncode == 2
    assert "refusing to bind" in result.stderr


def test_list_pages_follow_every_write(tmp_path: Path) -> None:
    """Rendered list pages are reused only while the feed head is unchanged: a write in the
    serve process shows at once, another process's write within the head poll."""
    import httpx

    home, root = tmp_path / "home", tmp_path / "pics"
    write_image(root / "a.png", 1)
    run_cli(home, "source", "add", "folder", str(root))
    run_cli(home, "sync")
    serve = ServeProcess(home, env={"GALLERYSYNC_JOB_WORKERS": "0"})
    try:
        serve.wait_healthy()

        def listed() -> list[str]:
            body = httpx.get(serve.url + "/api/assets").json()
            return [a["origins"][0]["path"] for a in body["assets"]]

        assert listed() == listed() == ["a.png"]  # the second one comes from the cache
        write_image(root / "b.png", 2)
        run_cli(home, "sync")  # another process: noticed by the head poll
        wait_for(lambda: listed() == ["b.png", "a.png"], 10, "b.png in the list")
        first = httpx.get(serve.url + "/api/assets").json()["assets"][0]
        assert httpx.delete(f"{serve.url}/api/assets/{first['id']}").status_code == 200
        assert listed() == ["a.png"]  # this process's own write: no wait at all
        assert httpx.post(f"{serve.url}/api/assets/{first['id']}/restore").status_code == 200
        assert listed() == ["b.png", "a.png"]
    finally:
        assert serve.stop() == 0, serve.log.read_text()
