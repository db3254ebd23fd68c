"""`gallerysync serve` with timers around the phases of an upload: where `serve` spends it.

Run by the push suite as `python bench/push/timed_serve.py OUT.json --home H serve --port P`
for one extra, untimed-for-the-goal push: it wraps gallerysync's own upload path (the calls
`gallerysync.sync.upload.UploadReceiver.receive` makes) with timers that add up calls, wall
time and the calling thread's CPU time (`time.thread_time`: the worker threads of
`asyncio.to_thread`), then runs the CLI unchanged and writes OUT.json when the process exits.
Nothing in src/ is changed; a wrapped name that no longer exists is skipped and reported, so
the figure says what it could not measure instead of failing the suite.
"""

from __future__ import annotations

import atexit
import functools
import json
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

# phase key -> (module, object or "", attribute, kind)
PHASES: dict[str, tuple[str, str, str, str]] = {
    "duplicate_check": ("gallerysync.sync.upload", "UploadReceiver", "record_duplicate", "sync"),
    "receive": ("gallerysync.sync.upload", "UploadReceiver", "receive", "async"),
    "temp_file": ("gallerysync.blobs.local", "BlobWriter", "__init__", "sync"),
    "hash_write": ("gallerysync.blobs.local", "BlobWriter", "write", "sync"),
    "verify": ("gallerysync.blobs.local", "BlobWriter", "finish", "sync"),
    "probe": ("gallerysync.sync.upload", "", "probe_file", "sync"),
    "fsync_rename": ("gallerysync.blobs.local", "BlobWriter", "commit", "sync"),
    "record": ("gallerysync.sync.upload", "UploadReceiver", "_record", "sync"),
}

_stats: dict[str, list[float]] = {}  # key -> [calls, wall seconds, thread CPU seconds]
_lock = threading.Lock()


def _add(key: str, wall: float, cpu: float) -> None:
    with _lock:
        entry = _stats.setdefault(key, [0, 0.0, 0.0])
        entry[0] += 1
        entry[1] += wall
        entry[2] += cpu


def _timed_sync(key: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            _add(key, time.perf_counter() - wall, time.thread_time() - cpu)

    return wrapper


def _timed_async(key: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        wall = time.perf_counter()
        try:
            return await fn(*args, **kwargs)
        finally:
            _add(key, time.perf_counter() - wall, 0.0)  # the loop's CPU is not this call's

    return wrapper


def install() -> list[str]:
    """Wrap every phase that exists; the keys of those that do not."""
    import importlib

    missing = []
    for key, (module_name, owner_name, attribute, kind) in PHASES.items():
        module = importlib.import_module(module_name)
        owner = getattr(module, owner_name, None) if owner_name else module
        fn = getattr(owner, attribute, None) if owner is not None else None
        if fn is None:
            missing.append(key)
            continue
        wrap = _timed_async if kind == "async" else _timed_sync
        setattr(owner, attribute, wrap(key, fn))
    return missing


def main(argv: list[str]) -> None:
    out, *cli_args = argv
    missing = install()

    def dump() -> None:
        with open(out, "w") as handle:
            json.dump({"phases": _stats, "missing": missing}, handle, indent=1)

    atexit.register(dump)
    from gallerysync.cli import main as cli_main

    sys.argv = ["gallerysync", *cli_args]
    cli_main()


if __name__ == "__main__":
    main(sys.argv[1:])
