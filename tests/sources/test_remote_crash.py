"""SIGKILL a real `gallerysync` process during phase 1 and during phase 2, then rerun: nothing
duplicated, nothing lost, no partial blob, nothing fetched twice that had completed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gallerysync.blobs.hashing import hash_bytes
from gallerysync.catalog import Catalog, schema
from tests.doubles.comfyui import ComfyUIDouble, sample_png
from tests.helpers import cli_json, run_cli, wait_for

GALLERYSYNC = [sys.executable, "-m", "gallerysync"]
ENV = {"GALLERYSYNC_RETRY_BASE_SECONDS": "0.02"}


def _catalog(home: Path) -> Catalog:
    return Catalog.open(f"sqlite:///{home / 'catalog.sqlite3'}")


def _scalar(home: Path, query: object) -> int:
    catalog = _catalog(home)
    try:
        with catalog.read() as conn:
            return int(conn.execute(query).scalar_one())  # type: ignore[call-overload]
    finally:
        catalog.close()


def _origins(home: Path) -> int:
    return _scalar(home, select(func.count()).select_from(schema.origins))


def _fetched(home: Path) -> int:
    return _scalar(home, select(func.count()).where(schema.origins.c.fetch_status == "done"))


def _start(home: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*GALLERYSYNC, "--home", str(home), *args],
        env={**os.environ, **ENV},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def comfy(tmp_path: Path) -> Iterator[ComfyUIDouble]:
    """Full ComfyUI history size: these tests list a thousand prompts."""
    with ComfyUIDouble(tmp_path / "comfy") as double:
        yield double


def _fill(comfy: ComfyUIDouble, prompts: int, per: int) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    ids = comfy.add_prompts_bulk(prompts, per, sample_png)
    assert len(ids) == prompts
    for name in os.listdir(comfy.root / "output"):
        files[name] = (comfy.root / "output" / name).read_bytes()
    return files


def test_kill_during_phase_1_then_rerun(tmp_path: Path, comfy: ComfyUIDouble) -> None:
    home = tmp_path / "home"
    files = _fill(comfy, 1000, 2)
    run_cli(home, "source", "add", "comfyui", comfy.url, "--name", "gpu", "--download", "off")
    comfy.faults.delay("/history", 0.4, count=100)  # each page slow: time to kill mid-pass
    proc = _start(home, "sync", "gpu", "--full", "--json")
    wait_for(lambda: _origins(home) >= 250, timeout=60)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = _origins(home)
    assert 0 < partial < len(files)
    comfy.faults.clear()
    history_calls = comfy.requests["/history"]
    (report,) = cli_json(home, "sync", "gpu", "--full", env=ENV)
    assert report["status"] == "ok", report
    # Resumed at the page it stopped at: the rerun re-listed only what was not committed.
    assert report["listed"] <= len(files) - partial + 2 * 250
    assert comfy.requests["/history"] - history_calls <= (len(files) - partial) // 500 + 4
    assert _origins(home) == len(files)
    assert _scalar(home, select(func.count()).select_from(schema.assets)) == len(files)


def test_kill_during_phase_2_then_rerun(tmp_path: Path, comfy: ComfyUIDouble) -> None:
    home = tmp_path / "home"
    files = _fill(comfy, 100, 2)
    run_cli(home, "source", "add", "comfyui", comfy.url, "--name", "gpu")
    run_cli(home, "sync", "gpu", "--metadata-only", "--json", env=ENV)
    comfy.faults.delay("/view", 0.05, count=10_000)
    proc = _start(home, "download", "--all-pending", "--concurrency", "2", "--json")
    wait_for(lambda: _fetched(home) >= 40, timeout=60)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = _fetched(home)
    views_before = comfy.requests["/view"]
    assert 0 < done_before < len(files)
    report = cli_json(home, "download", "--all-pending", "--json", env=ENV)
    assert report["failed"] == 0
    assert report["downloaded"] == len(files) - done_before  # completed ones not fetched again
    assert comfy.requests["/view"] - views_before == len(files) - done_before
    assert _fetched(home) == len(files)
    catalog = _catalog(home)
    try:
        with catalog.read() as conn:
            hashes = sorted(str(h) for (h,) in conn.execute(select(schema.assets.c.hash)))
    finally:
        catalog.close()
    assert hashes == sorted(hash_bytes(data) for data in files.values())
    blob_tmp = home / "blobs" / "tmp"
    assert not blob_tmp.exists() or [p for p in blob_tmp.rglob("*") if not p.is_dir()] == []
    stored = sorted(p.name for p in (home / "blobs").glob("??/*"))
    assert stored == hashes
