"""Where a push's time goes: one more push to a `serve` whose upload path carries timers."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from live.servers import SERVE_ENV, Server, free_port
from push.client import SETTLE, PushRun, push_once, server_assets
from push.limits import BareUpload
from push.throughput import check_push, stop_serve
from run import MB, Line, Results, expect, log

TIMED_SERVE = Path(__file__).resolve().with_name("timed_serve.py")
# Phases inside `receive`, timed in their worker threads (the rest of `receive` is the body
# arriving: network, uvicorn, Starlette's stream, the buffering on the event loop).
INSIDE_RECEIVE = ("temp_file", "hash_write", "verify", "probe", "fsync_rename")
LABELS = {
    "duplicate_check": "duplicate check (catalog read)",
    "body": "body in (network, uvicorn, loop)",
    "temp_file": "temp file (mkstemp, flock)",
    "hash_write": "BLAKE3 + write",
    "verify": "verify",
    "probe": "probe",
    "fsync_rename": "fsync, rename, fsync dir",
    "record": "record (catalog write tx)",
}


def timed_push(
    folder: Path, n: int, homes: Path, results: Results
) -> tuple[PushRun, dict[str, Any]]:
    home = homes / "serve-timed"
    cmd = [
        sys.executable,
        str(TIMED_SERVE),
        str(homes / "timers.json"),
        *("--home", str(home), "serve", "--port", str(free_port())),
    ]
    server = Server(
        "gallerysync serve (timed)", cmd, homes / "serve-timed.log", {**SERVE_ENV, **SETTLE}
    )
    try:
        asyncio.run(server.wait_serve_ready())
        pushed = push_once(homes / "client-timed", folder, server.url, homes, server)
        check_push(results, "timed push", pushed, n)
        expect(results, "timed push: assets on the server", server_assets(server.url)[0], n)
    finally:
        stop_serve(results, server, "timed serve")
    timers = json.loads((homes / "timers.json").read_text())
    return pushed, timers


def per_upload(timers: dict[str, Any], n: int) -> dict[str, tuple[float, float]]:
    """Mean wall and thread-CPU milliseconds per upload of each phase, `body` derived."""
    phases = {k: (v[1] * 1000 / n, v[2] * 1000 / n) for k, v in timers["phases"].items()}
    receive = phases.pop("receive", None)
    if receive is not None:
        inside = sum(phases.get(k, (0.0, 0.0))[0] for k in INSIDE_RECEIVE)
        phases["body"] = (receive[0] - inside, 0.0)
    return {k: phases[k] for k in LABELS if k in phases}


def bench_split(
    results: Results,
    folder: Path,
    n: int,
    total: int,
    homes: Path,
    bare: BareUpload,
    durable: BareUpload,
) -> None:
    log("push: where the time goes: one more push to a serve with timers on its upload path ...")
    pushed, timers = timed_push(folder, n, homes, results)
    phases = per_upload(timers, n)
    log(f"  {pushed.seconds:.2f}s = {total / MB / pushed.seconds:,.0f} MB/s (instrumented)")
    text = "; ".join(
        f"{LABELS[k]} {wall:.1f} ms" + (f" ({cpu:.1f} ms CPU)" if cpu else "")
        for k, (wall, cpu) in phases.items()
    )
    missing = timers.get("missing") or []
    results.raw["split"] = {"push": asdict(pushed), "timers": timers, "per_upload_ms": phases}
    results.lines.append(
        Line(
            "serve CPU per upload (instrumented push)",
            pushed.server_cpu_seconds * 1000 / n,
            "ms",
            bare.server_cpu_seconds * 1000 / bare.files,
            "bare app CPU per upload, bodies dropped",
            "info",
            f"an extra push to a `serve` run by `bench/push/timed_serve.py`, timers around its "
            f"upload path ({total / MB / pushed.seconds:,.0f} MB/s with them). Mean per upload, "
            f"wall (CPU of the worker thread): {text}. The event loop's own CPU is the rest of "
            f"the process's. The bare durable app used "
            f"{durable.server_cpu_seconds * 1000 / durable.files:.1f} ms CPU per upload"
            + (f". Not measured (renamed in src/?): {', '.join(missing)}" if missing else ""),
        )
    )
