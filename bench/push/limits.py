"""The limits of the push suite: a bare aiohttp uploader and BLAKE3 hashing alone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

READ = 1 << 20  # the push client reads (and hashes) files in 1 MiB pieces


@dataclass
class BareUpload:
    seconds: float
    files: int
    bytes: int
    mode: str  # the bare server's: discard | durable
    server_cpu_seconds: float = 0.0


def bare_uploads(url: str, paths: Sequence[str], concurrency: int, mode: str) -> BareUpload:
    """POST every file to `url` with `concurrency` workers on one aiohttp session (as many
    connections), each body the file's bytes read in one piece (in a thread; the files are
    in the page cache) with a `Content-Length`, each answer 201. Wall time from the first
    request to the last answer. Nothing else: no hashing, no queue, no `Expect: 100-continue`
    — the least an upload of these bytes over HTTP costs on this stack."""
    import aiohttp

    async def go() -> BareUpload:
        queue = list(reversed(paths))
        total = files = 0

        def read(path: str) -> bytes:
            with open(path, "rb", buffering=0) as handle:
                return handle.read()

        async def worker(session: Any) -> None:
            nonlocal total, files
            while queue:
                path = queue.pop()
                body = await asyncio.to_thread(read, path)
                headers = {"Content-Type": "application/octet-stream"}
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    assert response.status == 201, (path, response.status)
                total += len(body)
                files += 1

        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            started = time.perf_counter()
            await asyncio.gather(*(worker(session) for _ in range(concurrency)))
            seconds = time.perf_counter() - started
        return BareUpload(seconds, files, total, mode)

    return asyncio.run(go())


def _hash(path: str) -> int:
    from blake3 import blake3

    hasher = blake3()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(READ):
            hasher.update(chunk)
            size += len(chunk)
    hasher.hexdigest()
    return size


def hash_files(paths: Sequence[str], threads: int) -> tuple[float, int]:
    """Seconds to BLAKE3 every file in 1 MiB reads on `threads` threads (the push client's
    hashing parallelism), in this process; and the bytes hashed."""
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        total = sum(pool.map(_hash, paths))
    return time.perf_counter() - started, total
