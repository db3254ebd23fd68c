"""The remote suite: runs every figure, writes the results page and files."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import run
from remote.downloads import bench_downloads
from remote.metadata import REPORTED_RATE, bench_metadata
from remote.peer import bench_peer
from remote.sizes import FULL, QUICK
from run import Results, log


def remote_environment() -> dict[str, Any]:
    import aiohttp

    env = run.environment()
    env["aiohttp"] = aiohttp.__version__
    env["sqlite"] = __import__("sqlite3").sqlite_version
    return env


def markdown(results: Results, command: str, seconds: float) -> str:
    p = results.params
    env = results.environment
    head = [
        f"# gallerysync remote benchmark — {p['started']}",
        "",
        f"Command: `{command}`  ",
        f"Mode: {'quick (1/10 sizes)' if p['quick'] else 'full'}; {p['entries']:,} ComfyUI "
        f"history entries x {p['images_per_entry']} images; {p['downloads']:,} downloads at "
        f"concurrency {p['download_concurrency']}; a peer with {p['peer_assets']:,} assets; "
        f"the goal figures are medians of {p['rounds']} interleaved rounds, the others best "
        f"of {p['repeats']}, medians of {p['smart_runs']} for the smart sync. Suite run time "
        f"{seconds:.0f} s.",
    ]
    tail = [
        run.environment_text(env, f"; aiohttp {env['aiohttp']}, SQLite {env['sqlite']}"),
        "",
        "The ComfyUI double (`tests/doubles/comfyui.py`) and the peer `gallerysync serve` run as "
        "processes of their own on loopback; gallerysync runs in the bench's process on fresh "
        "SQLite homes (`Runtime.sync_remote`, `Runtime.download`), and so do the bare limits. "
        f"For context, tools in this space report about {REPORTED_RATE:.0f} images per second. "
        "Method: see `bench/remote/`.",
    ]
    return run.markdown_document(head, results, tail)


def remote_suite(quick: bool, data: Path, keep_homes: bool, command: str) -> int:
    """Run the remote benchmark; returns 1 when a sanity check failed."""
    sizes = QUICK if quick else FULL
    suite = run.start_suite("remote", quick, data, asdict(sizes), remote_environment())
    results, homes = suite.results, suite.homes
    log(f"remote: for context, tools in this space report about {REPORTED_RATE:.0f} images/s")
    try:
        bench_metadata(results, sizes, homes)
        bench_downloads(results, sizes, homes)
        bench_peer(results, sizes, data, homes)
    finally:
        suite.remove_homes(keep_homes)
    return suite.report(command, lambda r, seconds: markdown(r, command, seconds))
