"""Figure 4: replicating a peer gallerysync's 10,000 assets (metadata only)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import run
from live.homes import copy_home, ensure_assets_home, gallerysync_cli
from live.servers import SERVE_ENV, Server, free_port
from remote.homes import Home
from remote.limits import source_rows, sqlite_inserts
from remote.sizes import RemoteSizes
from run import Line, Results, expect, log

STARTUP_SCAN_TIMEOUT = 300.0


def peer_tree(data: Path, assets: int) -> Path:
    """A tree of `assets` unique tiny PNGs: the scan suite's `small-quick` tree when that is
    the size (so the live suite's home of it is reused), else one of its own."""
    if assets == run.QUICK.small:
        tree = data / "small-quick"
        run.ensure_small(tree, run.QUICK)
        return tree
    tree = data / "remote" / f"small-{assets}"
    sizes = dataclasses.replace(run.QUICK, small=assets, small_dirs=max(1, assets // 100))
    run.ensure_small(tree, sizes)
    return tree


def _wait_startup_scan(home: Path, since_ms: int, server: Server) -> None:
    """With auth on, /healthz does not tell the start-up scan's state: read the peer's catalog
    until the folder source has a finished run that started after `serve` did."""
    deadline = time.monotonic() + STARTUP_SCAN_TIMEOUT
    while True:
        server.check_alive()
        with run.catalog_ro(home) as conn:
            done = conn.execute(
                "SELECT count(*) FROM sync_runs WHERE started_at >= ? AND status != 'running'",
                (since_ms,),
            ).fetchone()[0]
        if done:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"the peer's start-up scan did not finish in {STARTUP_SCAN_TIMEOUT}s"
            )
        time.sleep(0.2)


def bench_peer(results: Results, sizes: RemoteSizes, data: Path, homes: Path) -> None:
    from gallerysync.sources.peer.connector import PAGE

    n = sizes.peer_assets
    tree = peer_tree(data, n)
    base = ensure_assets_home(data, tree, n)
    peer_home = copy_home(base, homes / "peer-home")
    token = json.loads(
        gallerysync_cli("--home", str(peer_home), "token", "create", "--user", "admin", "--json")
    )["token"]
    cmd = [
        *run.gallerysync_command(),
        "--home",
        str(peer_home),
        "serve",
        "--port",
        str(free_port()),
    ]
    started_ms = time.time_ns() // 1_000_000
    server = Server(
        "gallerysync serve (peer, auth on)",
        cmd,
        homes / "serve-peer.log",
        {**SERVE_ENV, "GALLERYSYNC_AUTH": "on"},
    )
    runs: list[dict[str, Any]] = []
    try:
        asyncio.run(server.wait_ready("/healthz", lambda _body: True))
        _wait_startup_scan(peer_home, started_ms, server)
        log(f"peer: serve (auth on) on {server.url} with {n:,} assets, start-up scan done")

        home: Home | None = None
        for attempt in range(sizes.repeats):
            if home is not None:
                home.close(remove=True)
            home = Home(homes / f"replica-{attempt}", "peer", server.url, extra={"token": token})
            cpu = server.cpu_seconds()
            started = time.perf_counter()
            report = home.runtime.sync_remote(home.source)
            seconds = time.perf_counter() - started
            runs.append(
                {
                    "seconds": seconds,
                    "report": report.as_json(),
                    "peer_cpu_seconds": server.cpu_seconds() - cpu,
                }
            )
            expect(results, "peer sync: status", report.status, "ok")
            expect(results, "peer sync: added", report.counts.get("added"), n)
            log(f"  {seconds:.2f}s = {n / seconds:,.0f} assets/s")
        assert home is not None
        rows = source_rows(home.path, home.source.id)
        home.close(remove=True)
        server.check_alive()
    finally:
        server.stop()
        problems = server.log_problems()
        expect(results, "peer serve: error lines in the log", problems[:5], [])

    expect(results, "peer limit rows: assets", len(rows.assets), n)
    log("peer: raw SQLite inserts of the same rows ...")
    limit_runs = [sqlite_inserts(homes / "limit-peer.db", rows, PAGE) for _ in range(sizes.repeats)]
    limit_s = min(limit_runs)
    best = min(runs, key=lambda r: r["seconds"])
    each = ", ".join(f"{r['seconds']:.2f}" for r in runs)
    results.raw["peer"] = {
        "assets": n,
        "tree": str(tree),
        "syncs": runs,
        "limit_seconds": limit_runs,
        "origin_meta_bytes": rows.meta_bytes,
    }
    results.lines.append(
        Line(
            f"peer replication, {n:,} assets (metadata)",
            n / best["seconds"],
            "assets/s",
            n / limit_s,
            f"raw SQLite inserts of the same {n:,} asset + origin rows",
            "info",
            f"`Runtime.sync_remote` (smart: a first sync reads the peer's feed from its start), "
            f"download off, fresh home each run: {best['seconds']:.2f}s, best of "
            f"{sizes.repeats} ({each} s); {best['report']['pages']} feed pages of up to {PAGE}; "
            f"the peer (`serve`, auth on, bearer token, job workers 0) used "
            f"{best['peer_cpu_seconds']:.2f}s CPU. Limit as for the metadata sync, {PAGE} "
            f"assets + {PAGE} origins per transaction (one feed page); origin meta "
            f"{rows.meta_bytes / n:,.0f} B each. No goal given: informational",
        )
    )
