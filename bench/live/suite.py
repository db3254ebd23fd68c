"""The live suite: the servers and homes of every figure, the results page and files."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from dataclasses import asdict
from pathlib import Path
from typing import Any

import run
from live.assets_list import bench_assets_list
from live.catch_up import bench_catch_up
from live.client import mark_load, put_files
from live.homes import copy_home, ensure_assets_home
from live.paint import (
    BARE_PAGE,
    CHROMIUM,
    CHROMIUM_ARGS,
    Paint,
    first_paint,
    min_paint_key,
    not_measured,
    paint_line,
    paint_text,
)
from live.servers import SERVE_ENV, Server, raise_nofile
from live.sizes import FULL, QUICK, LiveSizes
from live.sse import bench_sse
from run import Results, expect, log, warn


async def bench_assets(
    results: Results, sizes: LiveSizes, base_home: Path, homes: Path, tree: Path
) -> None:
    from playwright.async_api import async_playwright

    from gallerysync.blobs.thumbnails import make_thumbnail

    with open(run.media_files(tree, ".png")[0], "rb") as handle:
        thumb = make_thumbnail(handle)
    bare = Server.bare(homes / "bare-assets.log")
    serve: Server | None = None
    try:
        await bare.wait_ready("/health", lambda _body: True)
        await put_files(
            results,
            bare.port,
            [
                ("thumb.webp", thumb, "image/webp"),
                ("paint.html", BARE_PAGE.encode(), "text/html; charset=utf-8"),
            ],
        )
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                # Cold: each repeat on a fresh copy of the catalog and a fresh serve; the last
                # serve stays up for the warm figure and the other phases.
                mark_load(results, "first paint")
                cold: list[Paint] = []
                home = base_home
                for attempt in range(sizes.repeats):
                    if serve is not None:
                        serve.stop()
                    home = copy_home(base_home, homes / f"live-assets-{attempt}")
                    serve = Server.gallerysync(home, homes / f"serve-assets-{attempt}.log")
                    await serve.wait_serve_ready()
                    log(f"first paint, cold ({attempt + 1}/{sizes.repeats}) ...")
                    cold.append(await first_paint(browser, serve.url + "/"))
                    log(f"  {paint_text(cold[-1])}")
                    if cold[-1].frame_ms is None:
                        break  # not measurable: more repeats would only wait again
                assert serve is not None
                warm: list[Paint] = []
                for attempt in range(sizes.repeats if cold[-1].frame_ms is not None else 1):
                    log(f"first paint, warm ({attempt + 1}) ...")
                    warm.append(await first_paint(browser, serve.url + "/"))
                    log(f"  {paint_text(warm[-1])}")
                bare_paints = []
                for _ in range(sizes.repeats):
                    bare_paints.append(await first_paint(browser, bare.url + "/files/paint.html"))
                log(f"first paint, bare page: {paint_text(min(bare_paints, key=min_paint_key))}")
            finally:
                await browser.close()
        if all(p.frame_ms is None for p in bare_paints):
            warn(results, f"bare page: {not_measured(bare_paints[0])}")
        results.raw["paint"] = {
            "cold": [asdict(p) for p in cold],
            "warm": [asdict(p) for p in warm],
            "bare": [asdict(p) for p in bare_paints],
            "thumb_bytes": len(thumb),
        }
        results.lines += [
            paint_line(
                f"first thumbnail painted, cold, {sizes.assets:,} assets", cold, bare_paints
            ),
            paint_line(
                f"first thumbnail painted, warm, {sizes.assets:,} assets", warm, bare_paints
            ),
        ]
        await bench_catch_up(results, sizes, serve, bare, home)
        await bench_assets_list(results, sizes, serve, bare, home)
        serve.check_alive()
    finally:
        if serve is not None:
            serve.stop()
            problems = serve.log_problems()
            expect(results, "assets serve: error lines in the log", problems[:5], [])
        bare.stop()
        expect(results, "bare app: error lines in the log", bare.log_problems()[:5], [])


def markdown(results: Results, command: str, seconds: float) -> str:
    p = results.params
    env = results.environment
    head = [
        f"# gallerysync live benchmark — {p['started']}",
        "",
        f"Command: `{command}`  ",
        f"Mode: {'quick (1/10 sizes)' if p['quick'] else 'full'}; {p['assets']:,} assets; SSE "
        f"with {' and '.join(f'{c:,}' for c in p['clients'])} clients, {p['publishes']} changes "
        f"each; catch-up {p['behind']:,} changes behind; best of {p['repeats']} where repeated. "
        f"Suite run time {seconds:.0f} s.",
    ]
    servers = (
        f"; uvicorn {env['uvicorn']} ({env['uvicorn_impl']}); Chromium {env.get('chromium', '?')}"
    )
    tail = [
        run.environment_text(env, servers),
        "",
        "Servers are real processes on loopback; `serve` runs with `GALLERYSYNC_JOB_WORKERS=0` "
        "(thumbnails only on request). The client (raw HTTP/1.1 over asyncio, one process) is "
        "the same for gallerysync and the bare limits. Method: see `bench/live/`.",
    ]
    return run.markdown_document(head, results, tail)


def live_environment() -> dict[str, Any]:
    import importlib.util

    import uvicorn

    env = run.environment()
    env["uvicorn"] = uvicorn.__version__
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    env["uvicorn_impl"] = f"loop {loop}, http {http}"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        env["chromium"] = subprocess.run(
            [CHROMIUM, "--version"], capture_output=True, text=True, timeout=30
        ).stdout.strip()
    return env


async def _suite(results: Results, sizes: LiveSizes, data: Path, homes: Path, quick: bool) -> None:
    tree = data / ("small-quick" if quick else "small")
    run.ensure_small(tree, run.QUICK if quick else run.FULL)
    base_home = ensure_assets_home(data, tree, sizes.assets)
    await bench_sse(results, sizes, data, homes)
    await bench_assets(results, sizes, base_home, homes, tree)


def live_suite(quick: bool, data: Path, keep_homes: bool, command: str) -> int:
    """Run the live benchmark; returns 1 when a sanity check failed."""
    sizes = QUICK if quick else FULL
    raise_nofile(2 * max(sizes.clients) + 256)
    params = {**asdict(sizes), "serve_env": SERVE_ENV}
    suite = run.start_suite("live", quick, data, params, live_environment())
    results, homes = suite.results, suite.homes
    try:
        asyncio.run(_suite(results, sizes, data, homes, quick))
    finally:
        suite.remove_homes(keep_homes)
    return suite.report(command, lambda r, seconds: markdown(r, command, seconds))
