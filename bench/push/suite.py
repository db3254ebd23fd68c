"""The push suite: the folder, the figures, the results page and files."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

import run
from push.client import client_hash_threads, client_settings
from push.files import write_files
from push.repush import bench_repush
from push.sizes import FULL, QUICK
from push.split import bench_split
from push.throughput import bench_throughput, stop_serve
from run import MB, Results, log


def push_environment() -> dict[str, Any]:
    import aiohttp
    import uvicorn

    env = run.environment()
    env["aiohttp"] = aiohttp.__version__
    env["uvicorn"] = uvicorn.__version__
    return env


def markdown(results: Results, command: str, seconds: float) -> str:
    p = results.params
    env = results.environment
    head = [
        f"# gallerysync push benchmark — {p['started']}",
        "",
        f"Command: `{command}`  ",
        f"Mode: {'quick (1/10 sizes)' if p['quick'] else 'full'}; {p['files']:,} unique JPEGs "
        f"({p['bytes'] / MB:,.0f} MB) in {p['dirs']} folders; push concurrency "
        f"{p['concurrency']} (the default), {p['hash_threads']} hashing threads, settle "
        f"{p['settle_seconds']} s; best of {p['repeats']} where repeated. Suite run time "
        f"{seconds:.0f} s.",
    ]
    tail = [
        run.environment_text(env, f"; aiohttp {env['aiohttp']}, uvicorn {env['uvicorn']}"),
        "",
        "`gallerysync serve` (auth off, job workers 0) and the bare Starlette app run as "
        "processes of their own on loopback with the same uvicorn settings; `gallerysync push` "
        "is a timed child process; the bare client and the hash limit run in the bench's "
        "process. Method: see `bench/push/`.",
    ]
    return run.markdown_document(head, results, tail)


def push_suite(quick: bool, data: Path, keep_homes: bool, command: str) -> int:
    """Run the push benchmark; returns 1 when a sanity check failed."""
    sizes = QUICK if quick else FULL
    started = datetime.now()
    stamp = started.strftime("%Y%m%d-%H%M%S")
    clock = time.perf_counter()
    run.note_busy()
    settings = client_settings()
    concurrency = int(settings.push_concurrency)
    threads = client_hash_threads()
    results = Results(
        params={
            "started": started.isoformat(timespec="seconds"),
            "quick": quick,
            "data": str(data),
            **asdict(sizes),
            "concurrency": concurrency,
            "hash_threads": threads,
            "settle_seconds": settings.settle_seconds,
        },
        environment=push_environment(),
    )
    homes = data / "homes" / f"push-{stamp}"
    homes.mkdir(parents=True)
    try:
        folder = homes / "files"
        paths = write_files(folder, sizes)
        run.expect(results, "files written", len(paths), sizes.files)
        total = run.warm_cache(paths, os.cpu_count() or 1)
        results.params["bytes"] = total
        server, bare, durable = bench_throughput(
            results, sizes, folder, paths, total, homes, concurrency
        )
        try:
            bench_repush(results, sizes, folder, paths, total, homes, server, threads)
        finally:
            stop_serve(results, server, "serve")
        bench_split(results, folder, len(paths), total, homes, bare, durable)
    finally:
        if not keep_homes:
            shutil.rmtree(homes, ignore_errors=True)
    seconds = time.perf_counter() - clock
    results.params["suite_seconds"] = round(seconds, 1)
    log(f"push suite took {seconds:.0f}s")
    name = f"push-{stamp}{'-quick' if quick else ''}"
    return run.report(results, "push", name, command, lambda r: markdown(r, command, seconds))
