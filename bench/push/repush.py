"""Figure 2: re-push of the same folder from a fresh client state, against hashing alone."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from live.servers import Server
from push.client import push_once, server_assets
from push.limits import hash_files
from push.sizes import PushSizes
from push.throughput import check_push
from run import MB, Line, Results, expect, log


def bench_repush(
    results: Results,
    sizes: PushSizes,
    folder: Path,
    paths: list[str],
    total: int,
    homes: Path,
    server: Server,
    threads: int,
) -> None:
    """Push the folder again to the server that has every file, from a new client home (an
    empty queue: a reinstalled client, or another machine with the same photos). The client
    must hash every file and ask `POST /api/assets/check`, and send no file byte."""
    n = len(paths)
    log("push: re-push from a fresh client home to the server that has every file ...")
    repushed = push_once(homes / "client-repush", folder, server.url, homes, server)
    check_push(results, "re-push", repushed, n)
    listed, _distinct = server_assets(server.url)
    expect(results, "re-push: assets on the server", listed, n)
    log(f"  {repushed.seconds:.2f}s, {repushed.bytes_sent:,} bytes sent")

    log(f"push: BLAKE3 of the same files, {threads} threads, 1 MiB reads ...")
    hashes = [hash_files(paths, threads) for _ in range(sizes.hash_repeats)]
    for _seconds, hashed in hashes:
        expect(results, "hash limit: bytes", hashed, total)
    hash_s = min(s for s, _ in hashes)
    log(f"  {hash_s:.2f}s = {total / MB / hash_s:,.0f} MB/s")

    results.raw["repush"] = {
        "push": asdict(repushed),
        "hash_seconds": [s for s, _ in hashes],
        "hash_threads": threads,
    }
    results.lines += [
        Line(
            f"re-push {n:,} files from a fresh client state: file bytes sent",
            float(repushed.bytes_sent),
            "B",
            None,
            "none: the check requests are the only traffic",
            "info",
            f"`bytes_sent` of the client's --json status; {repushed.done:,} done "
            f"(the server said `exists`), server still lists {listed:,} assets",
            bound="<= 0",
        ),
        Line(
            f"re-push {n:,} files from a fresh client state: time",
            repushed.seconds,
            "s",
            hash_s,
            f"BLAKE3 of the same files in-process, {threads} threads, 1 MiB reads",
            "info",
            f"the same CLI command with a new --home: start-up, scan (logged "
            f"{repushed.timeline.get('scanned') or float('nan'):.2f}s after spawn), hash every "
            "file, "
            f"{-(-n // 1000)} check request(s) of up to 1,000 hashes; the client used "
            f"{repushed.user_cpu + repushed.system_cpu:.2f}s CPU, `serve` "
            f"{repushed.server_cpu_seconds:.2f}s; hash limit best of {sizes.hash_repeats} "
            f"({total / MB / hash_s:,.0f} MB/s)",
        ),
    ]
