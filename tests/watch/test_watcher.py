"""The settle-watcher on a real folder (inotify through watchfiles), applied to a real catalog."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy import select

from gallerysync.blobs.hashing import hash_bytes
from gallerysync.catalog import Catalog, schema
from gallerysync.catalog.assets import list_assets
from gallerysync.domain import AssetStatus, Source
from gallerysync.sync.folder import FolderScan, add_folder
from gallerysync.sync.live import folder_watcher
from gallerysync.watch.names import is_ignored_name
from tests.helpers import image_bytes, write_image

SETTLE = 0.4


def test_ignored_names() -> None:
    for name in (
        "a.tmp",
        "a.jpg.part",
        "x.crdownload",
        "~$doc.jpg",
        ".~lock.x#",
        ".dropbox",
        ".sync-conflict",
        "pic.jpg.icloud",
        ".DS_Store",
        ".hidden.jpg",
        "SD_ID",
        ".sd-id",
        "file.jpg~",
    ):
        assert is_ignored_name(name), name
    for name in ("photo.jpg", "IMG_0001.HEIC", "tmp.jpg", "partial.png"):
        assert not is_ignored_name(name), name


def paths_by_status(catalog: Catalog, source: Source) -> dict[str, str]:
    with catalog.read() as conn:
        rows = conn.execute(
            select(schema.origins.c.remote_id, schema.origins.c.status).where(
                schema.origins.c.source_id == source.id
            )
        ).all()
    return {r[0]: r[1] for r in rows}


async def run_watching(
    catalog: Catalog, root: Path, body: Callable[[Source, asyncio.Queue[object]], Awaitable[None]]
) -> Source:
    source = add_folder(catalog, root)
    FolderScan(catalog, source).run()
    applied: asyncio.Queue[object] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    def on_commit(head: int) -> None:  # every committed change wakes the test
        loop.call_soon_threadsafe(applied.put_nowait, head)

    catalog.add_commit_listener(on_commit)
    watcher = folder_watcher(
        catalog,
        source,
        settle_seconds=SETTLE,
        on_applied=lambda _s, counts: loop.call_soon_threadsafe(applied.put_nowait, counts),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(watcher.run(stop))
    await asyncio.wait_for(watcher.watching.wait(), 10)
    try:
        await asyncio.wait_for(body(source, applied), 30)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        catalog.remove_commit_listener(on_commit)
    return source


async def until(applied: asyncio.Queue[object], check: Callable[[], bool]) -> None:
    """Wait for committed changes and applied batches until `check()` holds."""
    while not check():
        await applied.get()


def test_slow_writer_is_registered_once_complete(sqlite_catalog: Catalog, tmp_path: Path) -> None:
    root = tmp_path / "sd"
    write_image(root / "seed.jpg", 1)
    data = image_bytes(2, "PNG", (300, 300))
    chunks = [data[i : i + len(data) // 6 + 1] for i in range(0, len(data), len(data) // 6 + 1)]

    async def body(source: Source, applied: asyncio.Queue[object]) -> None:
        with open(root / "slow.png", "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
                handle.flush()
                await asyncio.sleep(SETTLE / 3)  # the writer pauses between chunks
        await until(applied, lambda: "slow.png" in paths_by_status(sqlite_catalog, source))

    source = asyncio.run(run_watching(sqlite_catalog, root, body))
    with sqlite_catalog.read() as conn:
        assets = list_assets(conn)
        origin_changes = conn.execute(
            select(schema.changes.c.seq).where(schema.changes.c.entity_type == "asset")
        ).all()
    assert sorted(a.hash or "" for a in assets) == sorted(
        [hash_bytes(data), hash_bytes((root / "seed.jpg").read_bytes())]
    )
    assert len(origin_changes) == 2  # seed + slow.png: no asset was ever made of a partial file
    assert source.id


def test_temp_names_are_ignored_and_renames_register(
    sqlite_catalog: Catalog, tmp_path: Path
) -> None:
    root = tmp_path / "sd"
    write_image(root / "seed.jpg", 1)

    async def body(source: Source, applied: asyncio.Queue[object]) -> None:
        for name in ("a.jpg.part", "b.tmp", "~$c.jpg", ".d.jpg", "e.jpg.crdownload"):
            write_image(root / name, 10, "JPEG")
        write_image(root / "download.jpg.part", 11, "JPEG")
        os.rename(root / "download.jpg.part", root / "download.jpg")
        await until(applied, lambda: "download.jpg" in paths_by_status(sqlite_catalog, source))

    source = asyncio.run(run_watching(sqlite_catalog, root, body))
    assert sorted(paths_by_status(sqlite_catalog, source)) == ["download.jpg", "seed.jpg"]


def test_delete_and_move_are_applied(sqlite_catalog: Catalog, tmp_path: Path) -> None:
    root = tmp_path / "sd"
    write_image(root / "seed.jpg", 1)
    write_image(root / "doomed.jpg", 2)
    write_image(root / "a" / "moving.jpg", 3)

    async def body(source: Source, applied: asyncio.Queue[object]) -> None:
        before = _asset_of(sqlite_catalog, source, "a/moving.jpg")
        (root / "doomed.jpg").unlink()
        (root / "b").mkdir()
        os.rename(root / "a" / "moving.jpg", root / "b" / "moved.jpg")
        await until(
            applied,
            lambda: (
                paths_by_status(sqlite_catalog, source)
                == {"seed.jpg": "present", "doomed.jpg": "missing", "b/moved.jpg": "present"}
            ),
        )
        assert _asset_of(sqlite_catalog, source, "b/moved.jpg") == before

    asyncio.run(run_watching(sqlite_catalog, root, body))
    with sqlite_catalog.read() as conn:
        statuses = sorted(a.status for a in list_assets(conn))
    assert statuses == [AssetStatus.MISSING, AssetStatus.PRESENT, AssetStatus.PRESENT]


def test_directory_moved_in_is_registered(sqlite_catalog: Catalog, tmp_path: Path) -> None:
    root = tmp_path / "sd"
    write_image(root / "seed.jpg", 1)
    outside = tmp_path / "card"
    for i in range(5):
        write_image(outside / "DCIM" / f"{i}.jpg", 20 + i)

    async def body(source: Source, applied: asyncio.Queue[object]) -> None:
        os.rename(outside, root / "card")
        await until(applied, lambda: len(paths_by_status(sqlite_catalog, source)) == 6)

    source = asyncio.run(run_watching(sqlite_catalog, root, body))
    assert set(paths_by_status(sqlite_catalog, source).values()) == {"present"}


def test_emptied_root_goes_offline_without_missing(sqlite_catalog: Catalog, tmp_path: Path) -> None:
    root = tmp_path / "sd"
    for i in range(3):
        write_image(root / f"{i}.jpg", i)
    parked = tmp_path / "parked"
    parked.mkdir()

    async def body(source: Source, applied: asyncio.Queue[object]) -> None:
        for entry in list(root.iterdir()):
            os.rename(entry, parked / entry.name)
        await until(applied, lambda: _status(sqlite_catalog, source) == "offline")

    source = asyncio.run(run_watching(sqlite_catalog, root, body))
    assert set(paths_by_status(sqlite_catalog, source).values()) == {"present"}


def _status(catalog: Catalog, source: Source) -> str:
    with catalog.read() as conn:
        return str(
            conn.execute(
                select(schema.sources.c.status).where(schema.sources.c.id == source.id)
            ).scalar_one()
        )


def _asset_of(catalog: Catalog, source: Source, rel: str) -> str:
    with catalog.read() as conn:
        return str(
            conn.execute(
                select(schema.origins.c.asset_id).where(
                    schema.origins.c.source_id == source.id, schema.origins.c.remote_id == rel
                )
            ).scalar_one()
        )
