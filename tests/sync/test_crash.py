"""SIGKILL in the middle of real work, then a rerun: the catalog is consistent and complete."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from sqlalchemy import func, select

from gallerysync.blobs.hashing import hash_file
from gallerysync.blobs.local import LocalBlobStore
from gallerysync.catalog import Catalog, schema
from tests.helpers import (
    ServeProcess,
    cli_json,
    freeze_mid_scan,
    run_cli,
    start_sync,
    wait_for,
    write_image,
)


def _open(home: Path) -> Catalog:
    return Catalog.open(f"sqlite:///{home / 'catalog.sqlite3'}")


def _count(home: Path, table: str) -> int:
    catalog = _open(home)
    try:
        with catalog.read() as conn:
            return int(
                conn.execute(
                    select(func.count()).select_from(schema.metadata.tables[table])
                ).scalar_one()
            )
    finally:
        catalog.close()


def _thumbnails(home: Path) -> int:
    catalog = _open(home)
    try:
        with catalog.read() as conn:
            return int(
                conn.execute(
                    select(func.count()).where(schema.assets.c.thumb_hash.is_not(None))
                ).scalar_one()
            )
    finally:
        catalog.close()


def test_scan_killed_half_way_then_rerun_is_consistent(tmp_path: Path) -> None:
    home, root = tmp_path / "home", tmp_path / "pics"
    total = 3000
    for i in range(total):
        write_image(root / f"d{i % 20}" / f"{i}.png", i)
    run_cli(home, "source", "add", "folder", str(root))
    proc = start_sync(home, 25, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        partial = freeze_mid_scan(proc, home, 50)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert 0 < partial < total, "the kill must land half-way"

    (report,) = cli_json(home, "sync")
    assert report["added"] == total - partial
    assert report["unchanged"] == partial
    assert (_count(home, "assets"), _count(home, "origins"), _count(home, "scan_cache")) == (
        total,
        total,
        total,
    )
    catalog = _open(home)
    try:
        with catalog.read() as conn:
            rows = conn.execute(
                select(schema.origins.c.remote_id, schema.assets.c.hash).join(
                    schema.assets, schema.assets.c.id == schema.origins.c.asset_id
                )
            ).all()
            runs = [
                r[0]
                for r in conn.execute(
                    select(schema.sync_runs.c.status).order_by(schema.sync_runs.c.started_at)
                )
            ]
    finally:
        catalog.close()
    for rel, digest in rows:
        assert hash_file(root / rel)[0] == digest
    assert runs == ["interrupted", "ok"]


def test_serve_killed_while_making_thumbnails_leaves_no_partial_blobs(tmp_path: Path) -> None:
    home, root = tmp_path / "home", tmp_path / "pics"
    from tests.helpers import image_bytes

    for i in range(60):
        (root / f"{i}.jpg").parent.mkdir(parents=True, exist_ok=True)
        (root / f"{i}.jpg").write_bytes(image_bytes(i, "JPEG", (1600, 1200)))
    run_cli(home, "source", "add", "folder", str(root))
    run_cli(home, "sync")
    first = ServeProcess(home)
    try:
        wait_for(lambda: len(list((home / "blobs").glob("??/*"))) >= 3, 60, "some thumbnails")
    finally:
        first.kill()
    second = ServeProcess(home)
    try:

        def all_thumbnails() -> bool:
            jobs = (second.health() or {}).get("jobs", {})
            idle = jobs.get("pending") == 0 and jobs.get("running") == 0
            return idle and _thumbnails(home) == 60

        wait_for(all_thumbnails, 120, "every thumbnail job to finish")
    finally:
        assert second.stop() == 0
    blobs = LocalBlobStore(home / "blobs")
    stored = list(blobs.iter_hashes())
    assert len(stored) == 60
    assert all(blobs.verify(h) for h in stored)
    assert list((home / "blobs" / "tmp").iterdir()) == []
    report = cli_json(home, "inspect")
    assert report["blobs"]["orphans"] == 0
    assert (report["jobs"]["pending"], report["jobs"]["failed"]) == (0, 0)
