"""The push suite: the folder, the figures, the results page and files."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import run
from push.client import client_hash_threads, client_settings
from push.files import write_files
from push.repush import bench_repush
from push.sizes import FULL, QUICK
from push.split import bench_split
from push.throughput import bench_throughput, stop_serve
from run import MB, Results


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
    settings = client_settings()
    concurrency = int(settings.push_concurrency)
    threads = client_hash_threads()
    params = {
        **asdict(sizes),
        "concurrency": concurrency,
        "hash_threads": threads,
        "settle_seconds": settings.settle_seconds,
    }
    suite = run.start_suite("push", quick, data, params, push_environment())
    results, homes = suite.results, suite.homes
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
        suite.remove_homes(keep_homes)
    return suite.report(command, lambda r, seconds: markdown(r, command, seconds))
