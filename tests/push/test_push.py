"""`gallerysync push` end to end: a real server subprocess and the real client subprocess.

Failure cases covered: the client SIGKILLed at random points (state on disk, nothing lost,
nothing repeated), the server down at start and killed mid-push (queued and retried until it
is back), an upload damaged on the way (refused by the server, re-hashed and sent again), a
file over the server's limit (413, reported as failed with the reason), a file written slowly
(uploaded once, complete), temp and hidden names (never uploaded).
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gallerysync.blobs.hashing import hash_bytes, hash_file
from tests.helpers import image_bytes, wait_for, write_image
from tests.push.support import (
    Proxy,
    Server,
    done_count,
    noise_png,
    push_once,
    push_status,
    queue_errors,
    queue_rows,
    server_assets,
    start_push,
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    started = Server(tmp_path / "server").start()
    yield started
    started.stop()


def make_images(folder: Path, count: int, *, start: int = 0) -> dict[str, str]:
    """`count` unique small PNGs in nested folders; returns rel path → BLAKE3 hash."""
    made: dict[str, str] = {}
    for i in range(start, start + count):
        rel = f"day{i % 7}/shot-{i:05d}.png"  # PNG: small JPEGs of nearby seeds can collide
        made[rel] = hash_bytes(write_image(folder / rel, i))
    return made


def test_thousand_files_each_exactly_once(server: Server, tmp_path: Path) -> None:
    folder = tmp_path / "shoot"
    made = make_images(folder, 1000)
    (folder / "day0" / "half.jpg.part").write_bytes(b"partial")  # a download in progress
    (folder / ".hidden.jpg").write_bytes(image_bytes(5000))
    (folder / "notes.txt").write_text("not an image")
    code, final = push_once(tmp_path / "client", folder, server.url)
    assert code == 0
    assert final["counts"]["done"] == 1000 and final["counts"]["failed"] == 0
    assets = server_assets(server.url)
    assert len(assets) == 1000
    assert sorted(a["hash"] for a in assets) == sorted(made.values())
    assert all(len(a["origins"]) == 1 for a in assets)
    paths = {a["origins"][0]["path"].split("/", 1)[1] for a in assets}
    assert paths == set(made)  # the relative paths are kept, temp/hidden names never sent


def test_sigkill_at_random_points_loses_and_repeats_nothing(server: Server, tmp_path: Path) -> None:
    folder, client = tmp_path / "shoot", tmp_path / "client"
    made = make_images(folder, 500)
    rng = random.Random(20261121)
    kills = 0
    for target in sorted(rng.sample(range(20, 480), 5)):
        proc = start_push(client, folder, server.url, "--once")
        try:
            wait_for(
                lambda t=target, p=proc: done_count(client, folder) >= t or p.poll() is not None,
                120,
                f"{target} files done",
            )
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.communicate(timeout=30)
    assert kills >= 3  # the pushes really were interrupted
    code, final = push_once(client, folder, server.url)
    assert code == 0 and final["counts"]["done"] == 500
    assert all(state == "done" for _, state in queue_rows(client, folder))
    assets = server_assets(server.url)
    assert sorted(a["hash"] for a in assets) == sorted(made.values())
    assert all(len(a["origins"]) == 1 for a in assets)
    # Nothing that completed was sent twice: at most the uploads in flight at each kill.
    sizes = sum(p.stat().st_size for p in folder.rglob("*.png"))
    assert final["bytes_sent"] <= sizes


def test_server_down_at_start_and_mid_push(tmp_path: Path) -> None:
    folder, client = tmp_path / "shoot", tmp_path / "client"
    for i in range(300):
        (folder / f"p{i:03d}.png").parent.mkdir(parents=True, exist_ok=True)
        (folder / f"p{i:03d}.png").write_bytes(noise_png(i, 64))
    server = Server(tmp_path / "server")  # not started: the client starts offline
    proc = start_push(client, folder, server.url, "--once")
    try:
        wait_for(lambda: queue_errors(client, folder), 60, "the client to find the server down")
        waiting = push_status(client, folder)["waiting"]  # the reason, as a user sees it
        assert waiting and "unreachable" in waiting[0]["error"]
        assert proc.poll() is None  # still trying
        server.start()
        wait_for(lambda: done_count(client, folder) >= 30, 60, "uploads to start")
        server.kill()  # mid-push
        wait_for(
            lambda: any("unreachable" in e for e in queue_errors(client, folder)),
            60,
            "the client to notice the server went away",
        )
        assert done_count(client, folder) < 300
        server.start()
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
        server.stop()
    server.start()
    try:
        assets = server_assets(server.url)
    finally:
        server.stop()
    assert sorted(a["hash"] for a in assets) == sorted(local_hashes_png(folder))


def local_hashes_png(folder: Path) -> list[str]:
    return [hash_file(p)[0] for p in folder.glob("*.png")]


def test_files_added_while_off_and_a_slow_writer(server: Server, tmp_path: Path) -> None:
    folder, client = tmp_path / "shoot", tmp_path / "client"
    make_images(folder, 3)
    assert push_once(client, folder, server.url)[1]["counts"]["done"] == 3
    make_images(folder, 2, start=100)  # while the client is not running
    code, final = push_once(client, folder, server.url)
    assert code == 0 and final["counts"]["done"] == 5
    assert len(server_assets(server.url)) == 5

    proc = start_push(client, folder, server.url)  # watching
    try:
        wait_for(lambda: push_status(client, folder)["counts"]["done"] == 5, 30, "start-up")
        data = noise_png(7, 200)
        slow = folder / "slow.png"
        with open(slow, "wb") as handle:  # a tethered camera writing over ~1.5 s
            for start in range(0, len(data), len(data) // 15 + 1):
                handle.write(data[start : start + len(data) // 15 + 1])
                handle.flush()
                time.sleep(0.1)
        wanted = hash_bytes(data)
        wait_for(
            lambda: any(a["hash"] == wanted for a in server_assets(server.url)),
            30,
            "the slowly written file on the server",
        )
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C: a clean stop
        proc.communicate(timeout=30)
    assert proc.returncode == 0
    assets = server_assets(server.url)
    assert len(assets) == 6  # no partial version of slow.png
    rows = dict(queue_rows(client, folder))
    assert rows["slow.png"] == "done"
    status = push_status(client, folder)
    assert status["counts"]["failed"] == 0


def test_same_image_twice_or_fresh_state_sends_no_bytes(server: Server, tmp_path: Path) -> None:
    proxy = Proxy(server.port)
    try:
        one, two = tmp_path / "one", tmp_path / "two"
        images = {f"n{i}.png": noise_png(100 + i) for i in range(20)}
        for folder in (one, two):
            for name, data in images.items():
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                (folder / name).write_bytes(data)
        (one / "copy-of-n0.png").write_bytes(images["n0.png"])  # twice in one folder too
        total = sum(len(d) for d in images.values())

        code, first = push_once(tmp_path / "client", one, proxy.url)
        assert code == 0 and first["counts"]["done"] == 21
        assert total <= first["bytes_sent"] < total + len(images["n0.png"])
        assert proxy.upstream_bytes >= total

        for home, folder in ((tmp_path / "client", two), (tmp_path / "fresh", one)):
            before = proxy.upstream_bytes
            code, again = push_once(home, folder, proxy.url)
            assert code == 0 and again["bytes_sent"] == 0
            assert all(state == "done" for _, state in queue_rows(home, folder))
            sent = proxy.upstream_bytes - before
            assert sent < total / 4, f"{sent} bytes went to the server for {total} known bytes"
        assert len(server_assets(server.url)) == 20
    finally:
        proxy.close()


def test_damaged_upload_is_refused_and_retried(server: Server, tmp_path: Path) -> None:
    proxy = Proxy(server.port)
    try:
        folder = tmp_path / "shoot"
        folder.mkdir()
        data = noise_png(1, 128)
        (folder / "a.png").write_bytes(data)
        proxy.corrupt_next_upload()
        code, final = push_once(tmp_path / "client", folder, proxy.url)
        assert proxy.corrupted == 1
        assert code == 0 and final["counts"]["done"] == 1
        assert final["bytes_sent"] == 2 * len(data)  # refused once, then sent whole again
        assets = server_assets(server.url)
        assert [a["hash"] for a in assets] == [hash_bytes(data)]
        original = httpx.get(f"{server.url}/api/assets/{assets[0]['id']}/original", timeout=10)
        assert original.content == data
    finally:
        proxy.close()


def test_oversized_file_is_refused_and_reported(tmp_path: Path) -> None:
    server = Server(tmp_path / "server", env={"GALLERYSYNC_UPLOAD_MAX_BYTES": "10000"}).start()
    try:
        folder = tmp_path / "shoot"
        folder.mkdir()
        (folder / "small.jpg").write_bytes(image_bytes(1))
        (folder / "big.png").write_bytes(noise_png(2, 100))  # ~30 kB
        code, final = push_once(tmp_path / "client", folder, server.url, check=False)
        assert code == 1
        assert final["counts"] == {**final["counts"], "done": 1, "failed": 1}
        [failed] = final["failed"]
        assert failed["path"] == "big.png" and "413" in failed["error"]
        assert "10000" in failed["error"]  # the server's own message
        status = push_status(tmp_path / "client", folder)
        assert status["failed"][0]["path"] == "big.png"
        assert [a["origins"][0]["path"] for a in server_assets(server.url)] == [
            f"{final['device']}/small.jpg"
        ]
    finally:
        server.stop()


def test_changed_file_becomes_a_new_version(server: Server, tmp_path: Path) -> None:
    folder, client = tmp_path / "shoot", tmp_path / "client"
    write_image(folder / "edit.jpg", 1)
    push_once(client, folder, server.url)
    [old] = server_assets(server.url)
    new_bytes = write_image(folder / "edit.jpg", 2)  # edited in place
    code, final = push_once(client, folder, server.url)
    assert code == 0 and final["counts"]["done"] == 1
    assets = {a["id"]: a for a in server_assets(server.url)}
    assert len(assets) == 2
    [new] = [a for a in assets.values() if a["id"] != old["id"]]
    assert new["hash"] == hash_bytes(new_bytes)
    kept = httpx.get(f"{server.url}/api/assets/{old['id']}/original", timeout=10)
    assert kept.status_code == 200 and hash_bytes(kept.content) == old["hash"]


def test_deletes_are_mirrored_only_when_asked(server: Server, tmp_path: Path) -> None:
    folder, client = tmp_path / "shoot", tmp_path / "client"
    made = make_images(folder, 3)
    push_once(client, folder, server.url)
    first, second = sorted(made)[:2]
    (folder / first).unlink()
    push_once(client, folder, server.url)
    assert len(server_assets(server.url)) == 3  # kept on the server
    (folder / second).unlink()
    code, final = push_once(client, folder, server.url, "--mirror-deletes")
    assert code == 0
    assert len(server_assets(server.url)) == 2
    trashed = server_assets(server.url, status="trashed")
    assert [a["hash"] for a in trashed] == [made[second]]
    assert final["counts"]["done"] == 1
