"""Figure 2: catch-up from 10,000 changes behind to `event: up-to-date`."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import run
from live.client import (
    READY_TIMEOUT,
    Fanout,
    change_events,
    client_gc_paused,
    close_clients,
    mark_load,
    open_clients,
    trash_and_restore,
)
from live.homes import first_asset_id
from live.servers import Server
from live.sizes import LiveSizes
from run import Line, Results, expect, log

CATCH_UP_BOUND_S = 1.0


def token_behind(home: Path, behind: int) -> tuple[str, int, int]:
    """A feed token `behind` changes before the head; and its sequence number and the head."""
    from gallerysync.catalog.feed import encode_token

    with run.catalog_ro(home) as conn:
        values = dict(conn.execute("SELECT key, value FROM instance").fetchall())
        head = int(conn.execute("SELECT seq FROM feed_head").fetchone()[0])
        row = conn.execute(
            "SELECT seq FROM changes ORDER BY seq DESC LIMIT 1 OFFSET ?", (behind - 1,)
        ).fetchone()
        since = int(row[0]) - 1
        after = conn.execute("SELECT count(*) FROM changes WHERE seq > ?", (since,)).fetchone()[0]
        if after != behind:
            raise RuntimeError(f"{after} changes after seq {since}, wanted {behind}")
    return encode_token(values["instance_id"], values["epoch"], since), since, head


def bare_select(home: Path, since: int) -> tuple[float, int]:
    """Seconds to read the change rows after `since` with their assets and origins."""
    with run.catalog_ro(home) as conn:
        started = time.perf_counter()
        rows = conn.execute(
            "SELECT c.*, a.*, o.source_id, o.remote_id, o.status FROM changes c "
            "LEFT JOIN assets a ON a.id = c.entity_id "
            "LEFT JOIN origins o ON o.asset_id = a.id WHERE c.seq > ? ORDER BY c.seq",
            (since,),
        ).fetchall()
        return time.perf_counter() - started, len(rows)


@dataclass
class CatchUp:
    seconds: float
    events: int  # `event: change`, counted as the bytes arrived
    hidden: int  # `id:`-only entries (changes the reader may not see), from the captured stream
    nbytes: int
    mean_event_bytes: float


async def catch_up(port: int, path: str) -> CatchUp:
    fanout = Fanout(1)
    with client_gc_paused():
        started = time.perf_counter()
        clients = await open_clients(port, path, 1, fanout, capture=True)
        try:
            await asyncio.wait_for(fanout.all_ready.wait(), READY_TIMEOUT)
        finally:
            close_clients(fanout, clients)
    client = clients[0]
    if fanout.errors or client.ready_at is None:
        raise RuntimeError(f"catch-up on {path}: {fanout.errors}")
    raw = b"".join(client.raw)
    events = change_events(raw)
    hidden = len(re.findall(rb"\nid: [^\n]*\n\n", raw))  # preceded by \r\n or \n\n
    mean = sum(map(len, events)) / max(1, len(events))
    return CatchUp(client.ready_at - started, len(client.times), hidden, client.nbytes, mean)


async def bench_catch_up(
    results: Results,
    sizes: LiveSizes,
    serve: Server,
    bare: Server,
    home: Path,
) -> None:
    from gallerysync.api.feed import STREAM_BATCH

    mark_load(results, "catch-up")
    behind = sizes.behind
    asset_id = first_asset_id(home)
    runs: list[CatchUp] = []
    positions: list[tuple[int, int]] = []
    for repeat in range(sizes.repeats):
        # Streams at one position share their reads: every cold run starts from a position no
        # stream has read (the head moved by two changes since the previous run).
        await trash_and_restore(serve.port, asset_id)
        token, since, head = token_behind(home, behind)
        positions.append((since, head))
        if repeat == 0:
            log(f"catch-up: {behind:,} changes behind (seq {since} -> head {head}) ...")
        runs.append(await catch_up(serve.port, f"/api/changes/stream?since={token}"))
    shared = await catch_up(serve.port, f"/api/changes/stream?since={token}")
    for r in [*runs, shared]:
        entries = r.events + r.hidden
        expect(results, "catch-up: entries received (change + id-only)", entries, behind)
    size = round(runs[0].mean_event_bytes)
    backlog = f"/backlog?n={behind}&size={size}&batch={STREAM_BATCH}"
    bare_runs = [await catch_up(bare.port, backlog) for _ in range(sizes.repeats)]
    for r in bare_runs:
        expect(results, "bare catch-up: change events received", r.events, behind)
    selects = [bare_select(home, positions[-1][0]) for _ in range(sizes.repeats)]
    for _seconds, rows in selects:
        expect(results, "bare SELECT: rows", rows, behind)
    best = min(r.seconds for r in runs)
    bare_best = min(r.seconds for r in bare_runs)
    select_best = min(s for s, _ in selects)
    log(
        f"  {best:.3f}s (bare SSE {bare_best:.3f}s, bare SELECT {select_best:.3f}s; a second "
        f"client at the same position {shared.seconds:.3f}s)"
    )
    results.raw["catch_up"] = {
        "behind": behind,
        "positions": positions,
        "gallerysync": [asdict(r) for r in runs],
        "gallerysync_same_position_again": asdict(shared),
        "bare_sse": [asdict(r) for r in bare_runs],
        "bare_select_seconds": [s for s, _ in selects],
        "mean_event_bytes": size,
        "bare_batch": STREAM_BATCH,
    }
    samples = ", ".join(f"{r.seconds:.3f}" for r in runs)
    results.lines += [
        Line(
            f"catch-up {behind:,} changes behind → up-to-date",
            best,
            "s",
            bare_best,
            f"bare SSE, {behind:,} events of {size} B, {STREAM_BATCH} per write",
            "info",
            f"runs {samples} s, each from a position no stream had read; {runs[0].events:,} "
            f"change events + {runs[0].hidden} id-only entries, {runs[0].nbytes / run.MB:.1f} MB; "
            f"{behind / best:,.0f} changes/s",
            bound=f"< {CATCH_UP_BOUND_S:.0f}",
        ),
        Line(
            f"catch-up {behind:,} behind, a second client at the same position",
            shared.seconds,
            "s",
            bare_best,
            f"bare SSE, {behind:,} events of {size} B, {STREAM_BATCH} per write",
            "info",
            "the pages the previous client read are shared (FeedFanout)",
        ),
        Line(
            f"catch-up {behind:,} changes behind, vs bare SELECT",
            best,
            "s",
            select_best,
            "sqlite3 SELECT of the same rows (changes ⋈ assets ⋈ origins)",
            "info",
            "context: the rows alone, without building or sending events",
        ),
    ]
