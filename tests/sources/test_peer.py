"""The peer connector against a real second `gallerysync serve` (auth on, bearer token)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from gallerysync.catalog import schema
from gallerysync.catalog.feed import encode_token
from gallerysync.runtime import Runtime
from gallerysync.sync.folder import add_folder
from gallerysync.sync.remote import add_remote_source
from tests.helpers import ServeProcess, cli_json, run_cli, wait_for, write_image
from tests.sources.remote_support import download_all, hash_of, remote_assets


class Peer:
    """Instance B: a folder of images served by `gallerysync serve` with auth on."""

    def __init__(self, tmp_path: Path) -> None:
        self.home = tmp_path / "peer-home"
        self.pics = tmp_path / "peer-pics"
        self.files = {f"p{i}.png": write_image(self.pics / f"p{i}.png", i) for i in range(12)}
        run_cli(self.home, "source", "add", "folder", str(self.pics), "--name", "pics")
        run_cli(self.home, "sync")
        self.token = cli_json(self.home, "token", "create", "--user", "admin")["token"]
        self.server = ServeProcess(
            self.home, env={"GALLERYSYNC_AUTH": "on", "GALLERYSYNC_SETTLE_SECONDS": "0.2"}
        )
        self.server.wait_healthy()

    @property
    def url(self) -> str:
        return self.server.url

    def api(self, method: str, path: str) -> httpx.Response:
        return httpx.request(
            method, self.url + path, headers={"Authorization": f"Bearer {self.token}"}, timeout=10
        )

    def asset_id(self, name: str) -> str:
        found = self.api("GET", f"/api/assets?q={name}").json()["assets"]
        assert len(found) == 1
        return str(found[0]["id"])

    def restart(self) -> None:
        assert self.server.stop() == 0
        self.server = ServeProcess(self.home, env={"GALLERYSYNC_AUTH": "on"}, port=self.server.port)
        self.server.wait_healthy()


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[Peer]:
    instance = Peer(tmp_path)
    yield instance
    instance.server.stop()


def _present(runtime: Runtime, source_id: str) -> dict[str, str | None]:
    source = runtime.source_by_id(source_id)
    return {
        r["remote_id"]: r["hash"]
        for r in remote_assets(runtime, source)
        if r["status"] == "present"
    }


def test_replicates_adds_changes_and_deletes(peer: Peer, runtime: Runtime, tmp_path: Path) -> None:
    source = add_remote_source(
        runtime.catalog, "peer", peer.url, name="b", download="auto", extra={"token": peer.token}
    )
    report = runtime.sync_remote(source)
    assert report.status == "ok", report.errors
    assert report.counts["added"] == 12
    fetched = download_all(runtime, source)
    assert (fetched.downloaded, fetched.failed) == (12, 0), fetched.errors
    assert sorted(h for h in _present(runtime, source.id).values() if h) == sorted(
        hash_of(data) for data in peer.files.values()
    )

    # On the peer: one image trashed, one added (its watcher registers it).
    trashed = peer.asset_id("p3.png")
    assert peer.api("DELETE", f"/api/assets/{trashed}").status_code == 200
    added = write_image(peer.pics / "new.png", 500)
    wait_for(lambda: peer.api("GET", "/api/assets?q=new.png").json()["assets"], 20)

    report = runtime.sync_remote(runtime.source_by_id(source.id))
    assert report.counts["added"] == 1 and report.counts["deleted"] == 1, report.as_json()
    download_all(runtime, source)
    present = _present(runtime, source.id)
    assert trashed not in present
    assert hash_of(added) in present.values()
    assert len(present) == 12

    # Restored on the peer: it comes back (same asset, a new version).
    assert peer.api("POST", f"/api/assets/{trashed}/restore").status_code == 200
    runtime.sync_remote(runtime.source_by_id(source.id))
    assert trashed in _present(runtime, source.id)

    # Restart everything, sync again: nothing changes, nothing is fetched again.
    peer.restart()
    again = runtime.sync_remote(runtime.source_by_id(source.id))
    assert again.status == "ok" and again.counts["added"] == 0
    assert download_all(runtime, source).downloaded == 0


def test_known_bytes_merge_without_download(peer: Peer, runtime: Runtime, tmp_path: Path) -> None:
    local = tmp_path / "local"
    write_image(local / "mine.png", 4)  # the same bytes as the peer's p4.png
    folder = add_folder(runtime.catalog, local)
    runtime.scan(folder)
    source = add_remote_source(
        runtime.catalog, "peer", peer.url, name="b", download="auto", extra={"token": peer.token}
    )
    report = runtime.sync_remote(source)
    assert report.counts["merged"] == 1
    assert download_all(runtime, source).downloaded == 11  # not the one we already hold
    with runtime.catalog.read() as conn:
        from gallerysync.catalog.assets import assets_by_hashes

        (asset,) = assets_by_hashes(
            conn, runtime.catalog.default_owner_id, [hash_of(peer.files["p4.png"])]
        ).values()
    origins = [r for r in remote_assets(runtime, source) if r["asset_id"] == asset.id]
    assert len(origins) == 1  # one asset, two origins (folder + peer)


def test_a_reset_from_the_peer_reconciles_fully(peer: Peer, runtime: Runtime) -> None:
    source = add_remote_source(
        runtime.catalog, "peer", peer.url, name="b", download="off", extra={"token": peer.token}
    )
    runtime.sync_remote(source)
    gone = peer.asset_id("p5.png")
    peer.api("DELETE", f"/api/assets/{gone}")
    # Our watermark now names another catalog (as after the peer was restored from a backup):
    # the peer answers 410 and the sync answers with a full pass, which sweeps.
    foreign = encode_token("0" * 32, "e", 1)
    with runtime.catalog.write() as tx:
        tx.conn.execute(
            update(schema.sync_state)
            .where(schema.sync_state.c.source_id == source.id)
            .values(cursor=f'{{"watermark": "{foreign}", "open_pass": null}}')
        )
    report = runtime.sync_remote(runtime.source_by_id(source.id))
    assert report.status == "ok", report.errors
    assert report.counts["resets"] == 1
    assert any("full pass" in e for e in report.errors)
    present = _present(runtime, source.id)
    assert gone not in present and len(present) == 11


def test_a_wrong_token_is_a_clear_failure(peer: Peer, runtime: Runtime) -> None:
    source = add_remote_source(
        runtime.catalog, "peer", peer.url, name="b", download="off", extra={"token": "gst_nope"}
    )
    report = runtime.sync_remote(source)
    assert report.status == "failed"
    assert "HTTP 401" in report.errors[0]
    assert remote_assets(runtime, source) == []
