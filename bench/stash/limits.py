"""The limits of the stash suite: bare SQLite inserts of the rows a sync wrote, and the
GraphQL requests a sync sent, replayed by a bare aiohttp client."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import run

# --- raw SQLite inserts ------------------------------------------------------------------------

TABLES = ("entities", "assets", "origins", "links")


@dataclass
class Rows:
    """Per table: its columns and the rows one Stash source's sync wrote, in insert order."""

    columns: dict[str, list[str]]
    rows: dict[str, list[tuple[Any, ...]]]

    def count(self) -> int:
        return sum(len(r) for r in self.rows.values())

    def counts(self) -> dict[str, int]:
        return {t: len(r) for t, r in self.rows.items()}


def source_rows(home: Path, source_id: str) -> Rows:
    """The source's entities, origins and links rows and the assets its origins point at,
    read back from the home's catalog (so every value — origin `meta` JSON included — is what
    the engine stored)."""
    queries = {
        "entities": ("SELECT * FROM entities WHERE source_id = ? ORDER BY rowid", (source_id,)),
        "assets": (
            "SELECT a.* FROM assets a JOIN origins o ON o.asset_id = a.id "
            "WHERE o.source_id = ? ORDER BY o.rowid",
            (source_id,),
        ),
        "origins": ("SELECT * FROM origins WHERE source_id = ? ORDER BY rowid", (source_id,)),
        "links": ("SELECT * FROM links WHERE source_id = ? ORDER BY rowid", (source_id,)),
    }
    columns: dict[str, list[str]] = {}
    rows: dict[str, list[tuple[Any, ...]]] = {}
    with run.catalog_ro(home) as conn:
        for table, (sql, args) in queries.items():
            cursor = conn.execute(sql, args)
            columns[table] = [d[0] for d in cursor.description]
            rows[table] = cursor.fetchall()
    return Rows(columns, rows)


def sqlite_inserts(path: Path, rows: Rows) -> float:
    """Seconds to insert every row into a fresh WAL SQLite file with gallerysync's table
    definitions: one `executemany` per table, all in one transaction (synchronous=NORMAL, as
    the catalog sets it). The rows are in memory before the clock starts."""
    with run.fresh_sqlite(path, run.catalog_ddl(TABLES)) as conn:
        inserts = {
            t: f"INSERT INTO {t} ({', '.join(c)}) VALUES ({', '.join('?' for _ in c)})"
            for t, c in rows.columns.items()
        }
        started = time.perf_counter()
        conn.execute("BEGIN")
        for table in TABLES:
            conn.executemany(inserts[table], rows.rows[table])
        conn.execute("COMMIT")
        return time.perf_counter() - started


# --- bare GraphQL replays ---------------------------------------------------------------------


@dataclass
class Replay:
    seconds: float
    requests: int
    bytes: int


def replay(url: str, api_key: str, queries: Sequence[str]) -> Replay:
    """POST `queries` to `url`/graphql one after another with a bare aiohttp client on a new
    session (one connection), in its own `asyncio.run` as a sync runs; each reply read, not
    decoded. What the double and HTTP cost for the requests a sync made."""
    import aiohttp

    bodies = [json.dumps({"query": q}).encode() for q in queries]
    headers = {"ApiKey": api_key, "Content-Type": "application/json"}

    async def go() -> Replay:
        total = 0
        started = time.perf_counter()
        connector = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(connector=connector) as session:
            for body in bodies:
                async with session.post(f"{url}/graphql", data=body, headers=headers) as reply:
                    total += len(await reply.read())
                    assert reply.status == 200, reply.status
        return Replay(time.perf_counter() - started, len(bodies), total)

    return asyncio.run(go())


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))
