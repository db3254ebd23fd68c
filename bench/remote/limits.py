"""The limits of the remote suite: bare SQLite inserts and bare aiohttp clients."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import run

# --- raw SQLite inserts of the rows a sync wrote ------------------------------------------


@dataclass
class Rows:
    """The asset and origin rows one remote source's sync wrote, in insert order."""

    asset_columns: list[str]
    assets: list[tuple[Any, ...]]
    origin_columns: list[str]
    origins: list[tuple[Any, ...]]

    @property
    def meta_bytes(self) -> int:
        index = self.origin_columns.index("meta")
        return sum(len(row[index].encode()) for row in self.origins)


def source_rows(home: Path, source_id: str) -> Rows:
    """Every origin of `source_id` in the home's catalog and the asset each points at, in the
    order they were inserted (rowid), so pages of the limit hold the rows the engine's pages
    held."""
    with run.catalog_ro(home) as conn:
        origins = conn.execute(
            "SELECT * FROM origins WHERE source_id = ? ORDER BY rowid", (source_id,)
        )
        origin_columns = [d[0] for d in origins.description]
        origin_rows = origins.fetchall()
        assets = conn.execute(
            "SELECT a.* FROM assets a JOIN origins o ON o.asset_id = a.id "
            "WHERE o.source_id = ? ORDER BY o.rowid",
            (source_id,),
        )
        asset_columns = [d[0] for d in assets.description]
        asset_rows = assets.fetchall()
    return Rows(asset_columns, asset_rows, origin_columns, origin_rows)


def sqlite_inserts(path: Path, rows: Rows, per_transaction: int) -> float:
    """Seconds to insert `rows` into a fresh WAL SQLite file with gallerysync's table
    definitions, `per_transaction` assets and as many origins per transaction (one
    `executemany` for each table per transaction); synchronous=NORMAL as the catalog sets it.
    Only the inserts and commits are timed; the rows are in memory before the clock starts."""
    with run.fresh_sqlite(path, run.catalog_ddl(("assets", "origins"))) as conn:
        insert_assets = (
            f"INSERT INTO assets ({', '.join(rows.asset_columns)}) "
            f"VALUES ({', '.join('?' for _ in rows.asset_columns)})"
        )
        insert_origins = (
            f"INSERT INTO origins ({', '.join(rows.origin_columns)}) "
            f"VALUES ({', '.join('?' for _ in rows.origin_columns)})"
        )
        started = time.perf_counter()
        for start in range(0, len(rows.origins), per_transaction):
            conn.execute("BEGIN")
            conn.executemany(insert_assets, rows.assets[start : start + per_transaction])
            conn.executemany(insert_origins, rows.origins[start : start + per_transaction])
            conn.execute("COMMIT")
        return time.perf_counter() - started


# --- bare aiohttp ----------------------------------------------------------------------------

CHUNK = 1 << 18  # gallerysync.sources.http.CHUNK_SIZE: the engine reads bodies in these


def _session(limit: int) -> Any:
    import aiohttp

    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit, limit_per_host=limit))


async def _round_trip(url: str) -> float:
    started = time.perf_counter()
    async with _session(1) as session, session.get(url) as response:
        await response.read()
        assert response.status == 200, response.status
    return time.perf_counter() - started


def round_trips(url: str, count: int) -> list[float]:
    """Seconds of `count` GETs of `url`, each on a fresh session (a new connection, as every
    `sync` opens one), each in its own `asyncio.run` like `Runtime.sync_remote`."""
    return [asyncio.run(_round_trip(url)) for _ in range(count)]


def keepalive_round_trips(url: str, count: int) -> list[float]:
    """Seconds of `count` GETs of `url` on one kept-alive connection (after one warm-up)."""

    async def go() -> list[float]:
        async with _session(1) as session:
            async with session.get(url) as response:
                await response.read()
            seconds = []
            for _ in range(count):
                started = time.perf_counter()
                async with session.get(url) as response:
                    await response.read()
                seconds.append(time.perf_counter() - started)
            return seconds

    return asyncio.run(go())


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def history_pages(base_url: str, entries: int, page: int) -> tuple[float, int]:
    """Seconds to GET every `/history?offset=K&max_items=page` page in order, one request at a
    time on one connection, bodies read (not decoded); and the bytes read."""

    async def go() -> tuple[float, int]:
        total = 0
        async with _session(1) as session:
            started = time.perf_counter()
            for offset in range(0, entries + 1, page):
                params = {"offset": str(offset), "max_items": str(page)}
                async with session.get(f"{base_url}/history", params=params) as response:
                    total += len(await response.read())
            return time.perf_counter() - started, total

    return asyncio.run(go())


@dataclass
class BareDownload:
    seconds: float
    files: int
    bytes: int
    mode: str


def bare_downloads(
    urls: Sequence[str], concurrency: int, *, mode: str = "discard", store: Path | None = None
) -> BareDownload:
    """Download every URL with `concurrency` workers on one aiohttp session (as many
    connections), each body read in 256 KiB chunks. Modes:

    - `discard`: the chunks are dropped (the network and the server alone);
    - `save`: each body is written to its own file in `store`, the way `curl -o` or `wget`
      save a download (open, write, close; no hash, no flush) — what a user calls downloading;
    - `durable`: each chunk is BLAKE3-hashed and written to a temp file in `store`, which is
      then fsynced (in a thread) and renamed to its hash, and the directory fsynced — a durable
      content-addressed store, file by file (gallerysync's downloader flushes a batch at once).

    Wall time from the first request to the last byte stored."""
    from blake3 import blake3

    assert mode in ("discard", "save", "durable") and (mode == "discard") == (store is None)

    async def go() -> BareDownload:
        queue = list(reversed(urls))
        total = files = 0

        async def worker(session: Any, number: int) -> None:
            nonlocal total, files
            while queue:
                index = len(queue) - 1
                url = queue.pop()
                async with session.get(url) as response:
                    assert response.status == 200, (url, response.status)
                    if store is None:
                        async for chunk in response.content.iter_chunked(CHUNK):
                            total += len(chunk)
                    elif mode == "save":
                        with open(store / f"file-{index}.png", "wb") as handle:
                            async for chunk in response.content.iter_chunked(CHUNK):
                                handle.write(chunk)
                                total += len(chunk)
                    else:
                        hasher = blake3()
                        temp = store / f"tmp-{number}-{files}"
                        with open(temp, "wb") as handle:
                            async for chunk in response.content.iter_chunked(CHUNK):
                                hasher.update(chunk)
                                handle.write(chunk)
                                total += len(chunk)
                            await asyncio.to_thread(_sync_close, handle)
                        os.replace(temp, store / hasher.hexdigest())
                        await asyncio.to_thread(_fsync_dir, store)
                files += 1

        async with _session(concurrency) as session:
            started = time.perf_counter()
            await asyncio.gather(*(worker(session, n) for n in range(concurrency)))
            seconds = time.perf_counter() - started
        return BareDownload(seconds, files, total, mode)

    return asyncio.run(go())


def _sync_close(handle: Any) -> None:
    handle.flush()
    os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
