"""Driving the code under test: `gallerysync serve` and `gallerysync push` as processes."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import run
from live.servers import SERVE_ENV, Server, free_port
from remote.homes import pinned_environ

PUSH_TIMEOUT = 1800.0
# The client waits until a file's size and mtime were stable this long before hashing it; the
# default (2 s) would mostly measure that wait on a folder written moments before.
SETTLE = {"GALLERYSYNC_SETTLE_SECONDS": "0.2"}


def client_settings() -> Any:
    """The settings a `push` child sees: the bench's pinned environment (no GALLERYSYNC_*
    from the caller) plus the settle time, so defaults such as the concurrency are read from
    gallerysync itself, not repeated here."""
    from gallerysync.config import load_settings

    return load_settings("/nonexistent-home", environ=client_environ())


def client_environ() -> dict[str, str]:
    return {**pinned_environ(), **SETTLE}


def client_hash_threads() -> int:
    """The push client's hashing parallelism: `PushClient._hash_slots` in push/client.py is
    a semaphore of `max(1, min(4, os.cpu_count()))` (kept in step by hand)."""
    return max(1, min(4, os.cpu_count() or 1))


def start_serve(home: Path, log_path: Path) -> Server:
    """A fresh `gallerysync serve` (auth off, SQLite in `home`, job workers 0 as in the live
    suite so thumbnail jobs for the uploads do not share the two cores with the figure; the
    thumbnails are then made on first request)."""
    cmd = [*run.gallerysync_command(), "--home", str(home), "serve", "--port", str(free_port())]
    return Server("gallerysync serve", cmd, log_path, {**SERVE_ENV, **SETTLE})


@dataclass
class PushRun:
    """One `gallerysync push --once --json` child: wall time, its own CPU and peak RSS (from
    `wait4`, so only that process is counted), its JSON status, the lines it logged."""

    seconds: float
    returncode: int
    user_cpu: float
    system_cpu: float
    maxrss_kb: int
    status: dict[str, Any]
    log: list[str] = field(default_factory=list)
    server_cpu_seconds: float = 0.0
    timeline: dict[str, float | None] = field(default_factory=dict)

    @property
    def done(self) -> int:
        return int(self.status.get("counts", {}).get("done", -1))

    @property
    def bytes_sent(self) -> int:
        return int(self.status.get("bytes_sent", -1))


def push_once(home: Path, folder: Path, url: str, scratch: Path, server: Server) -> PushRun:
    """Time `gallerysync --home HOME push FOLDER --to URL --once --json` as a child process."""
    cmd = [
        *run.gallerysync_command(),
        "--home",
        str(home),
        "push",
        str(folder),
        "--to",
        url,
        "--device",
        "bench",
        "--once",
        "--json",
    ]
    out_path, err_path = scratch / "push.stdout", scratch / "push.stderr"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        cpu = server.cpu_seconds()
        spawned = time.time()
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=client_environ())
        try:
            _pid, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        server_cpu = server.cpu_seconds() - cpu
    text = out_path.read_text()
    lines = err_path.read_text(errors="replace").splitlines()
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = {"unparsed_stdout": text[-2000:]}
    return PushRun(
        seconds=seconds,
        returncode=proc.returncode,
        user_cpu=usage.ru_utime,
        system_cpu=usage.ru_stime,
        maxrss_kb=usage.ru_maxrss,
        status=parsed,
        log=lines[-50:],
        server_cpu_seconds=server_cpu,
        timeline=timeline(home, folder, lines, spawned),
    )


def timeline(
    home: Path, folder: Path, log_lines: list[str], spawned: float
) -> dict[str, float | None]:
    """When, in seconds after the child was spawned, it had scanned the folder (its one INFO
    line's time stamp: interpreter start-up, imports, opening the queue, the walk) and marked
    its first and its last file done (`updated_at` of the `done` rows of its queue, which
    `push` keeps in the home): start-up, ramp-up and steady state of a push, from the files
    the client leaves anyway."""
    from gallerysync.push.client import queue_path_for

    scanned: float | None = None
    for line in log_lines:
        if "push scan of" in line:
            stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
            scanned = stamp.timestamp() - spawned
            break
    first = last = None
    path = queue_path_for(home, folder)
    if path.exists():
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            row = conn.execute(
                "SELECT min(updated_at), max(updated_at) FROM files WHERE state = 'done'"
            ).fetchone()
        if row[0] is not None:
            first, last = row[0] - spawned, row[1] - spawned
    return {"scanned": scanned, "first_done": first, "last_done": last}


def server_assets(url: str) -> tuple[int, int]:
    """How many assets the server lists (`GET /api/assets?limit=500`, following `next`),
    and how many distinct hashes they have."""
    count = 0
    hashes: set[str] = set()
    cursor: str | None = None
    while True:
        query = "limit=500" + (f"&cursor={urllib.parse.quote(cursor)}" if cursor else "")
        with urllib.request.urlopen(f"{url}/api/assets?{query}", timeout=60) as response:
            page = json.loads(response.read())
        count += len(page["assets"])
        hashes.update(str(a.get("hash")) for a in page["assets"])
        cursor = page.get("next")
        if not cursor:
            return count, len(hashes)
