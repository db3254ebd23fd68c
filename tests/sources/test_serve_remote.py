"""`serve` follows remote sources: a smart sync at start-up, then live hints (ComfyUI's `/ws`,
a peer's SSE stream) wake a sync — the schedule is set to an hour, so only a hint can explain an
update within the test. Downloads run as jobs; an on-demand source fetches when opened."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.doubles.comfyui import ComfyUIDouble, sample_png
from tests.helpers import ServeProcess, cli_json, run_cli, wait_for, write_image

SLOW_SCHEDULE = {"GALLERYSYNC_REMOTE_SYNC_SECONDS": "3600", "GALLERYSYNC_SETTLE_SECONDS": "0.2"}


def _assets(server: ServeProcess, **params: str) -> list[dict[str, Any]]:
    response = httpx.get(server.url + "/api/assets", params={"limit": "500", **params}, timeout=10)
    assets: list[dict[str, Any]] = response.json()["assets"]
    return assets


def test_serve_syncs_at_start_follows_ws_hints_and_downloads(
    tmp_path: Path, comfy: ComfyUIDouble
) -> None:
    home = tmp_path / "home"
    comfy.add_prompt([("before.png", sample_png(1))])
    run_cli(home, "source", "add", "comfyui", comfy.url, "--name", "gpu")
    server = ServeProcess(home, env=SLOW_SCHEDULE)
    try:
        server.wait_healthy()
        wait_for(lambda: [a for a in _assets(server) if a["hash"]], 30, "start-up sync + download")
        wait_for(lambda: comfy.connected_client_ids(), 30, "the /ws hint connection")
        comfy.add_prompt([("after.png", sample_png(2))])  # from "another machine"

        def finished() -> list[dict[str, Any]] | None:
            ready = [a for a in _assets(server) if a["hash"] and a["thumbnail"]]
            return ready if len(ready) == 2 else None

        done = wait_for(finished, 30, "the hinted prompt synced, downloaded and thumbnailed")
        paths = sorted(o["path"] for a in done for o in a["origins"])
        assert paths == ["output/after.png", "output/before.png"]
        runs = httpx.get(server.url + "/api/sync/runs", timeout=10).json()["runs"]
        assert len(runs) >= 2 and all(r["status"] == "ok" for r in runs)
    finally:
        assert server.stop() == 0


def test_on_demand_source_fetches_when_opened(tmp_path: Path, comfy: ComfyUIDouble) -> None:
    home = tmp_path / "home"
    data = sample_png(3)
    comfy.add_prompt([("lazy.png", data)])
    run_cli(home, "source", "add", "comfyui", comfy.url, "--download", "on-demand")
    (report,) = cli_json(home, "sync")
    assert report["added"] == 1 and report["status"] == "ok"
    assert comfy.view_bytes_sent == 0
    server = ServeProcess(home, env=SLOW_SCHEDULE)
    try:
        server.wait_healthy()
        (asset,) = _assets(server)
        assert asset["hash"] is None and asset["thumbnail"]  # the tile asks for it
        original = httpx.get(server.url + asset["original"], timeout=30)
        assert original.status_code == 200 and original.content == data
        thumb = httpx.get(server.url + f"/api/assets/{asset['id']}/thumbnail", timeout=30)
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/webp"
        assert comfy.requests["/view"] == 1  # fetched once, then served from the blob store
    finally:
        assert server.stop() == 0


def test_serve_follows_a_peer_over_its_stream(tmp_path: Path) -> None:
    peer_home, pics = tmp_path / "peer", tmp_path / "pics"
    write_image(pics / "one.png", 1)
    run_cli(peer_home, "source", "add", "folder", str(pics))
    token = cli_json(peer_home, "token", "create", "--user", "admin")["token"]
    peer = ServeProcess(peer_home, env={"GALLERYSYNC_AUTH": "on", **SLOW_SCHEDULE})
    home = tmp_path / "home"
    server: ServeProcess | None = None
    try:
        peer.wait_healthy()
        run_cli(home, "source", "add", "peer", peer.url, "--token", token, "--name", "b")
        server = ServeProcess(home, env=SLOW_SCHEDULE)
        server.wait_healthy()
        wait_for(lambda: len([a for a in _assets(server) if a["hash"]]) == 1, 30, "start-up")
        write_image(pics / "two.png", 2)  # the peer's watcher registers it; its feed hints us
        wait_for(lambda: len([a for a in _assets(server) if a["hash"]]) == 2, 30, "hinted")
    finally:
        if server is not None:
            assert server.stop() == 0
        assert peer.stop() == 0
