"""Figure 3: `GET /api/assets` pages, repeated, all once after a change, and followed to the end."""

from __future__ import annotations

import asyncio
import json
import math
import re
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from live.client import (
    HttpConn,
    client_gc_paused,
    mark_load,
    percentile,
    put_files,
    trash_and_restore,
)
from live.homes import first_asset_id
from live.servers import Server
from live.sizes import LiveSizes
from run import Line, Results, expect, log, warn


@dataclass
class LoadRun:
    requests: int
    seconds: float
    per_second: float
    p50_ms: float
    p99_ms: float
    server_cpu_ms_per_request: float
    bad: int


async def load(server: Server, path: str, connections: int, seconds: float, length: int) -> LoadRun:
    """`connections` keep-alive connections, each sending its next GET when the answer is in;
    1 s of warm-up, then `seconds` counted."""
    warmup = 1.0
    started = time.perf_counter()
    begin, end = started + warmup, started + warmup + seconds
    done: list[tuple[float, float]] = []
    bad = 0

    async def worker() -> None:
        nonlocal bad
        conn = await HttpConn.open(server.port)
        raw = conn.build("GET", path)
        try:
            while time.perf_counter() < end:
                t0 = time.perf_counter()
                status, body = await conn.send(raw)
                done.append((t0, time.perf_counter()))
                if status != 200 or len(body) != length:
                    bad += 1
        finally:
            conn.close()

    with client_gc_paused():
        workers = [asyncio.ensure_future(worker()) for _ in range(connections)]
        await asyncio.sleep(max(0.0, begin - time.perf_counter()))
        cpu0 = server.cpu_seconds()
        await asyncio.gather(*workers)
        cpu = server.cpu_seconds() - cpu0
    counted = [(t0, t1) for t0, t1 in done if begin <= t1 <= end]
    latencies = [t1 - t0 for t0, t1 in counted] or [math.nan]
    n = len(counted)
    after_begin = sum(1 for _t0, t1 in done if t1 >= begin)  # what the CPU time paid for
    return LoadRun(
        requests=n,
        seconds=seconds,
        per_second=n / seconds,
        p50_ms=percentile(latencies, 50) * 1000,
        p99_ms=percentile(latencies, 99) * 1000,
        server_cpu_ms_per_request=cpu / max(1, after_begin) * 1000,
        bad=bad,
    )


@dataclass
class SweepRun:
    pages: int
    seconds: float
    per_second: float
    first_pages_p50_ms: float  # the first tenth of the pages
    last_pages_p50_ms: float  # the last tenth: the deepest keyset pages
    server_cpu_ms_per_request: float
    bad: int


async def sweep(server: Server, paths: Sequence[str], connections: int) -> SweepRun:
    """Every path once, in order, over `connections` keep-alive connections."""
    conns = [await HttpConn.open(server.port) for _ in range(connections)]
    raws = [conns[0].build("GET", path) for path in paths]
    latencies = [math.nan] * len(paths)
    next_index = 0
    bad = 0

    async def worker(conn: HttpConn) -> None:
        nonlocal next_index, bad
        while next_index < len(raws):
            index = next_index
            next_index += 1
            t0 = time.perf_counter()
            status, body = await conn.send(raws[index])
            latencies[index] = time.perf_counter() - t0
            if status != 200 or not body.startswith(b'{"assets":['):
                bad += 1

    with client_gc_paused():
        cpu0 = server.cpu_seconds()
        started = time.perf_counter()
        try:
            await asyncio.gather(*(worker(conn) for conn in conns))
        finally:
            for conn in conns:
                conn.close()
        seconds = time.perf_counter() - started
        cpu = server.cpu_seconds() - cpu0
    tenth = max(1, len(paths) // 10)
    return SweepRun(
        pages=len(paths),
        seconds=seconds,
        per_second=len(paths) / seconds,
        first_pages_p50_ms=statistics.median(latencies[:tenth]) * 1000,
        last_pages_p50_ms=statistics.median(latencies[-tenth:]) * 1000,
        server_cpu_ms_per_request=cpu / len(paths) * 1000,
        bad=bad,
    )


NEXT = re.compile(rb'"next":(null|"([^"]*)")}$')


async def walk_pages(
    results: Results, server: Server, limit: int, assets: int
) -> tuple[list[tuple[str, bytes]], float, list[float]]:
    """Follow `next` from the first page to the last, one request at a time; the pages, the
    total seconds and each page's seconds."""
    conn = await HttpConn.open(server.port)
    pages: list[tuple[str, bytes]] = []
    each: list[float] = []
    started = time.perf_counter()
    with client_gc_paused():
        try:
            path: str | None = f"/api/assets?limit={limit}"
            while path is not None:
                t0 = time.perf_counter()
                status, body = await conn.request("GET", path)
                each.append(time.perf_counter() - t0)
                if status != 200:
                    warn(results, f"GET {path}: {status}")
                    break
                pages.append((path, body))
                found = NEXT.search(body[-300:])  # no JSON parsing inside the timed walk
                if found is None:
                    warn(results, f"GET {path}: no next cursor at the end of the body")
                    break
                cursor = found.group(2)
                path = f"/api/assets?limit={limit}&cursor={cursor.decode()}" if cursor else None
        finally:
            conn.close()
    seconds = time.perf_counter() - started
    shown = sum(len(json.loads(body)["assets"]) for _path, body in pages)
    expect(results, "assets listed by following next to the end", shown, assets)
    return pages, seconds, each


async def bench_assets_list(
    results: Results, sizes: LiveSizes, serve: Server, bare: Server, home: Path
) -> None:
    limit = sizes.list_limit
    conns = sizes.list_connections
    asset_id = first_asset_id(home)
    mark_load(results, "assets list")
    log(f"GET /api/assets?limit={limit}: following next through {sizes.assets:,} assets ...")
    await trash_and_restore(serve.port, asset_id)  # no page cached at this head
    pages, walk_seconds, walk_each = await walk_pages(results, serve, limit, sizes.assets)
    log(f"  {len(pages)} pages in {walk_seconds:.2f}s")
    stored = [
        (f"page{index}.json", body, "application/json") for index, (_, body) in enumerate(pages)
    ]
    await put_files(results, bare.port, stored)
    bare_paths = [f"/files/{name}" for name, _, _ in stored]
    bare_walk = await sweep(bare, bare_paths, 1)
    raw: dict[str, Any] = {
        "pages": len(pages),
        "walk_seconds": walk_seconds,
        "walk_page_ms": [round(x * 1000, 2) for x in walk_each],
        "bare_walk": asdict(bare_walk),
    }

    # The same page again and again: served from the head-keyed page cache after the first.
    deep = min(sizes.deep_pages, len(pages)) - 1
    for label, index in (("first page", 0), (f"page {deep + 1} (keyset)", deep)):
        path, body = pages[index]
        log(
            f"GET /api/assets?limit={limit}, {label} repeated: {sizes.repeats} x "
            f"{sizes.list_seconds:.0f}s each ..."
        )
        g_runs: list[LoadRun] = []
        b_runs: list[LoadRun] = []
        for _ in range(sizes.repeats):
            g_runs.append(await load(serve, path, conns, sizes.list_seconds, len(body)))
            b_runs.append(await load(bare, bare_paths[index], conns, sizes.list_seconds, len(body)))
        for r in g_runs:
            expect(results, f"{label}: bad answers (gallerysync)", r.bad, 0)
        for r in b_runs:
            expect(results, f"{label}: bad answers (bare)", r.bad, 0)
        g = max(g_runs, key=lambda r: r.per_second)
        b = max(b_runs, key=lambda r: r.per_second)
        log(f"  {g.per_second:.1f} req/s (bare {b.per_second:.1f} req/s)")
        raw[label] = {
            "path": path,
            "bytes": len(body),
            "gallerysync": [asdict(r) for r in g_runs],
            "bare": [asdict(r) for r in b_runs],
        }
        results.lines.append(
            Line(
                f"GET /api/assets?limit={limit}, {label}, repeated, {sizes.assets:,} assets",
                g.per_second,
                "req/s",
                b.per_second,
                "bare Starlette, same bytes from memory",
                ">= 0.50",
                f"{conns} keep-alive connections, best of {sizes.repeats} x "
                f"{sizes.list_seconds:.0f} s (runs "
                f"{', '.join(f'{r.per_second:.0f}' for r in g_runs)} req/s); "
                f"{len(body) / 1000:.0f} kB; latency p50 {g.p50_ms:.1f} ms, p99 {g.p99_ms:.1f} ms "
                f"(bare {b.p50_ms:.1f}, {b.p99_ms:.1f}); server CPU per request "
                f"{g.server_cpu_ms_per_request:.1f} ms (bare {b.server_cpu_ms_per_request:.2f}); "
                "all but the first answer come from the page cache (same head)",
            )
        )

    # Every page once, right after a change: nothing cached, every page read and rendered.
    log(f"GET /api/assets?limit={limit}, all {len(pages)} pages once after a change ...")
    paths = [path for path, _body in pages]
    g_sweeps: list[SweepRun] = []
    b_sweeps: list[SweepRun] = []
    for _ in range(sizes.repeats):
        await trash_and_restore(serve.port, asset_id)
        g_sweeps.append(await sweep(serve, paths, conns))
        b_sweeps.append(await sweep(bare, bare_paths, conns))
    for r in g_sweeps:
        expect(results, "all pages: bad answers (gallerysync)", r.bad, 0)
    for r in b_sweeps:
        expect(results, "all pages: bad answers (bare)", r.bad, 0)
    g_sweep = max(g_sweeps, key=lambda r: r.per_second)
    b_sweep = max(b_sweeps, key=lambda r: r.per_second)
    log(f"  {g_sweep.per_second:.1f} req/s (bare {b_sweep.per_second:.1f} req/s)")
    raw["all pages after a change"] = {
        "gallerysync": [asdict(r) for r in g_sweeps],
        "bare": [asdict(r) for r in b_sweeps],
    }
    results.raw["assets_list"] = raw
    tenth = max(1, len(pages) // 10)
    results.lines += [
        Line(
            f"GET /api/assets?limit={limit}, all {len(pages)} pages once after a change, "
            f"{sizes.assets:,} assets",
            g_sweep.per_second,
            "req/s",
            b_sweep.per_second,
            "bare Starlette, same bytes from memory",
            ">= 0.50",
            f"{conns} keep-alive connections, every page read from the catalog (the head moved "
            f"just before), best of {sizes.repeats} (runs "
            f"{', '.join(f'{r.per_second:.0f}' for r in g_sweeps)} req/s); latency p50 of the "
            f"first {tenth} pages {g_sweep.first_pages_p50_ms:.1f} ms, of the last {tenth} "
            f"(deepest) {g_sweep.last_pages_p50_ms:.1f} ms (bare "
            f"{b_sweep.first_pages_p50_ms:.1f}, {b_sweep.last_pages_p50_ms:.1f}); server CPU "
            f"per request {g_sweep.server_cpu_ms_per_request:.1f} ms",
        ),
        Line(
            f"GET /api/assets?limit={limit}, follow next through {sizes.assets:,} assets",
            walk_seconds,
            "s",
            bare_walk.seconds,
            f"bare Starlette, the same {len(pages)} bodies",
            "info",
            "one connection, one request at a time, right after a change (a client scrolling "
            f"to the end); page latency p50 of the first {tenth} pages "
            f"{statistics.median(walk_each[:tenth]) * 1000:.1f} ms, of the last {tenth} "
            f"{statistics.median(walk_each[-tenth:]) * 1000:.1f} ms, last page "
            f"{walk_each[-1] * 1000:.1f} ms",
        ),
    ]
