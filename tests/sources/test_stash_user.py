"""A Stash source as a new user runs it: `source add stash URL --api-key`, `sync`, browse and
filter by an inherited performer over the HTTP API; then edits, a merge and a delete in Stash,
and every mode agrees with what Stash now says."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.doubles.stash import StashDouble
from tests.helpers import ServeProcess, cli_json, run_cli, wait_for

ENV = {"GALLERYSYNC_RETRY_BASE_SECONDS": "0.02", "GALLERYSYNC_REMOTE_SYNC_SECONDS": "3600"}


@pytest.fixture
def stash() -> Iterator[StashDouble]:
    with StashDouble(api_key="s3cret-key") as double:
        yield double


def _library(stash: StashDouble) -> dict[str, int]:
    ann = stash.create("performer", name="Ann")
    bob = stash.create("performer", name="Bob")
    beach, sunset = stash.create("tag", name="beach"), stash.create("tag", name="sunset")
    studio = stash.create("studio", name="North Studio")
    gallery = stash.create(
        "gallery",
        title="Holiday",
        date="2024-07-01",
        photographer="Cy",
        studio=studio,
        links={"performers": [ann], "tags": [beach]},
    )
    ids = {"ann": ann, "bob": bob, "beach": beach, "sunset": sunset, "gallery": gallery}
    for i in range(4):
        ids[f"in{i}"] = stash.create("image", title=f"holiday {i}", links={"galleries": [gallery]})
    ids["alone"] = stash.create(
        "image", title="alone", date="2020-01-01", links={"performers": [bob], "tags": [sunset]}
    )
    ids["scene"] = stash.create("scene", title="clip", links={"galleries": [gallery]})
    return ids


def _get(server: ServeProcess, path: str, **params: Any) -> Any:
    reply = httpx.get(server.url + path, params=params, timeout=10)
    assert reply.status_code == 200, reply.text
    return reply.json()


def _entity(server: ServeProcess, kind: str, name: str) -> dict[str, Any]:
    found = [e for e in _get(server, "/api/entities", kind=kind)["entities"] if e["name"] == name]
    assert len(found) == 1, (kind, name, found)
    return found[0]


def _titles(server: ServeProcess, **params: Any) -> list[str]:
    assets = _get(server, "/api/assets", limit=100, **params)["assets"]
    return sorted(str(a["origins"][0]["path"]) for a in assets)


def test_add_sync_browse_and_filter_by_inherited_performer(
    tmp_path: Path, stash: StashDouble
) -> None:
    ids = _library(stash)
    home = tmp_path / "home"
    added = cli_json(home, "source", "add", "stash", stash.url, "--api-key", "s3cret-key")
    assert added["kind"] == "stash" and added["name"].startswith("stash-127.0.0.1")
    listed = run_cli(home, "source", "list", "--json").stdout
    assert "s3cret-key" not in listed  # credentials are never shown

    (report,) = cli_json(home, "sync", env=ENV)
    assert report["status"] == "ok", report
    assert report["added"] == 5 + 1 + 2 + 2 + 1 + 1  # images, scene, tags, people, studio, gallery
    assert report["download"]["downloaded"] == 6 and report["download"]["failed"] == 0

    server = ServeProcess(home, env=ENV)
    try:
        server.wait_healthy()
        ann = _entity(server, "person", "Ann")
        assert ann["asset_count"] == 5  # 4 images and the scene, all through the gallery
        in_gallery = sorted(
            [f"image:{ids[f'in{i}']}" for i in range(4)] + [f"scene:{ids['scene']}"]
        )
        assert _titles(server, person=ann["id"]) == in_gallery
        beach = _entity(server, "tag", "beach")
        holiday = _entity(server, "collection", "Holiday")
        assert _titles(server, tag=beach["id"], collection=holiday["id"]) == in_gallery
        studio = _entity(server, "studio", "North Studio")
        assert _titles(server, studio=studio["id"]) == in_gallery
        one = next(
            a
            for a in _get(server, "/api/assets", person=ann["id"])["assets"]
            if a["origins"][0]["path"] == f"image:{ids['in0']}"
        )
        by_name = {label["name"]: label for label in one["labels"]}
        assert by_name["Ann"]["inherited"] and by_name["Holiday"]["inherited"] is False
        assert one["inherited"]["date"] == {
            "value": "2024-07-01",
            "via": f"gallery:{ids['gallery']}",
        }
        assert one["inherited"]["photographer"]["value"] == "Cy"
        bob = _entity(server, "person", "Bob")
        assert _titles(server, person=bob["id"]) == [f"image:{ids['alone']}"]
        # The original bytes came from Stash with the API key.
        original = httpx.get(f"{server.url}/api/assets/{one['id']}/original", timeout=10)
        assert original.content == stash.rows["image"][ids["in0"]].data
    finally:
        server.stop()

    # Edits in Stash: the gallery loses Ann and gains Bob; sunset merges into beach; a
    # performer is deleted; an image leaves the gallery.
    stash.tick(2)
    stash.update("gallery", ids["gallery"], links={"performers": [ids["bob"]]})
    stash.merge_tags([ids["sunset"]], ids["beach"])
    stash.remove_gallery_images(ids["gallery"], [ids["in3"]])
    stash.destroy("performer", ids["ann"])
    for mode in ("--smart", "--full"):
        (report,) = cli_json(home, "sync", mode, env=ENV)
        assert report["status"] == "ok", report
    server = ServeProcess(home, env=ENV)
    try:
        server.wait_healthy()
        names = {e["name"] for e in _get(server, "/api/entities", kind="person")["entities"]}
        assert names == {"Bob"}
        bob = _entity(server, "person", "Bob")
        expected = sorted(
            [f"image:{ids[f'in{i}']}" for i in range(3)]
            + [f"image:{ids['alone']}", f"scene:{ids['scene']}"]
        )
        assert _titles(server, person=bob["id"]) == expected and bob["asset_count"] == 5
        beach = _entity(server, "tag", "beach")
        assert f"image:{ids['alone']}" in _titles(server, tag=beach["id"])  # merged in place
        assert f"image:{ids['in3']}" not in _titles(server, tag=beach["id"])  # left the gallery
        assert [e["name"] for e in _get(server, "/api/entities", kind="tag")["entities"]] == [
            "beach"
        ]
    finally:
        server.stop()


def test_a_wrong_api_key_fails_the_run_with_a_clear_message(
    tmp_path: Path, stash: StashDouble
) -> None:
    home = tmp_path / "home"
    run_cli(home, "source", "add", "stash", stash.url, "--api-key", "wrong")
    (report,) = cli_json(home, "sync", env=ENV, check=False)
    assert report["status"] == "failed"
    assert "401" in report["errors"][0] and "--api-key" in report["errors"][0]


def test_serve_syncs_when_a_stash_scan_completes(tmp_path: Path, stash: StashDouble) -> None:
    """`scanCompleteSubscribe` is the live hint: `serve` subscribes over the GraphQL websocket
    and runs a smart sync when a scan finishes (the schedule here is an hour away)."""
    stash.create("image", title="first")
    home = tmp_path / "home"
    run_cli(home, "source", "add", "stash", stash.url, "--api-key", "s3cret-key")
    server = ServeProcess(home, env=ENV)
    try:
        server.wait_healthy()
        wait_for(lambda: len(_get(server, "/api/assets")["assets"]) == 1, what="start-up sync")
        wait_for(lambda: stash.subscriptions == 1, what="the scan subscription")
        # Quiesce: a sync asked for now consumes any wake-up the connection's first hint left.
        (source,) = _get(server, "/api/sources")["sources"]
        asked = int(time.time() * 1000)
        httpx.post(f"{server.url}/api/sources/{source['id']}/sync", json={}, timeout=10)

        def settled() -> bool:
            runs = _get(server, "/api/sync/runs")["runs"]
            done = any(r["started_at"] >= asked and r["status"] != "running" for r in runs)
            return done and not any(r["status"] == "running" for r in runs)

        wait_for(settled, what="the asked-for sync")
        stash.tick(1)
        stash.create("image", title="scanned in")
        scanned = int(time.time() * 1000)
        stash.scan_complete()
        wait_for(lambda: len(_get(server, "/api/assets")["assets"]) == 2, what="the hinted sync")
        assert any(r["started_at"] >= scanned for r in _get(server, "/api/sync/runs")["runs"])
    finally:
        server.stop()


def test_on_demand_tiles_use_stash_thumbnails_not_originals(
    tmp_path: Path, stash: StashDouble
) -> None:
    """Browsing an on-demand Stash source fetches `paths.thumbnail`, never the original."""
    image = stash.create("image", title="big")
    home = tmp_path / "home"
    run_cli(
        home,
        "source",
        "add",
        "stash",
        stash.url,
        "--api-key",
        "s3cret-key",
        "--download",
        "on-demand",
    )
    (report,) = cli_json(home, "sync", env=ENV)
    assert report["status"] == "ok" and report["to_download"] == 0
    server = ServeProcess(home, env=ENV)
    try:
        server.wait_healthy()
        (asset,) = _get(server, "/api/assets")["assets"]
        assert asset["hash"] is None and asset["thumbnail"]
        thumb = httpx.get(server.url + asset["thumbnail"], timeout=10)
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/webp"
        assert stash.requests.get(f"/image/{image}/thumbnail") == 1
        assert f"/image/{image}/image" not in stash.requests
        assert _get(server, f"/api/assets/{asset['id']}")["hash"] is None  # still on demand
        again = httpx.get(server.url + asset["thumbnail"], timeout=10)
        assert again.content == thumb.content
        assert stash.requests.get(f"/image/{image}/thumbnail") == 1  # stored, not re-fetched
        original = httpx.get(f"{server.url}/api/assets/{asset['id']}/original", timeout=10)
        assert original.content == stash.rows["image"][image].data
    finally:
        server.stop()
