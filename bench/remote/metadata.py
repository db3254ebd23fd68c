"""Figures 1 and 2: metadata sync of a large ComfyUI history, and a smart sync with no change."""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from remote.double import DoubleProcess
from remote.homes import Home
from remote.limits import (
    Rows,
    history_pages,
    keepalive_round_trips,
    median,
    round_trips,
    source_rows,
    sqlite_inserts,
)
from remote.sizes import RemoteSizes
from run import Line, Results, expect, log

REPORTED_RATE = 18.0  # images/s: what tools in this space report for their ComfyUI import


@dataclass
class Split:
    """Where one instrumented full sync spent its time (seconds)."""

    total: float
    listing: float  # inside the connector's list_page: fetch + parse + paging
    fetch: float  # HTTP GET /history (`get_body`)
    parse: float  # `parse_history`: JSON bytes -> RemoteItems (msgspec decode included)
    apply: float  # inside RemoteSync._apply: one catalog transaction per page
    requests: int


def _timed_classes() -> tuple[type, type]:
    """A ComfyUI connector and a RemoteSync that time their own steps (bench-side subclasses:
    the engine is not changed; `_history` repeats the two calls of the connector's own)."""
    from gallerysync.sources.comfyui.connector import ComfyUISource
    from gallerysync.sources.comfyui.history import parse_history
    from gallerysync.sources.http import get_body
    from gallerysync.sync.remote import RemoteSync

    class TimedComfyUI(ComfyUISource):
        fetch = parse = listing = 0.0
        requests = 0

        async def _history(self, **params: int) -> Any:
            started = time.perf_counter()
            body = await get_body(
                self.session,
                f"{self.url}/history",
                params={k: str(v) for k, v in params.items()},
                what=f"ComfyUI {self.url}/history",
            )
            fetched = time.perf_counter()
            entries = parse_history(body, include_temp=self.include_temp)
            self.fetch += fetched - started
            self.parse += time.perf_counter() - fetched
            self.requests += 1
            return entries

        async def list_page(self, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await super().list_page(*args, **kwargs)
            finally:
                self.listing += time.perf_counter() - started

    class TimedSync(RemoteSync):
        applying = 0.0

        def _apply(self, *args: Any, **kwargs: Any) -> None:
            started = time.perf_counter()
            try:
                super()._apply(*args, **kwargs)
            finally:
                self.applying += time.perf_counter() - started

    return TimedComfyUI, TimedSync


def instrumented_sync(home: Home) -> tuple[Split, Any]:
    """A full sync through `RemoteSync` with the timing subclasses, on its own session."""
    from gallerysync.sources.http import new_session

    timed_connector, timed_sync = _timed_classes()

    async def go() -> tuple[Split, Any]:
        async with new_session() as session:
            connector = timed_connector(home.source.options["url"], session, include_temp=False)
            sync = timed_sync(
                home.runtime.catalog,
                home.source,
                mode="full",
                sweep_max_fraction=home.settings.sweep_max_fraction,
                retry_base=home.settings.retry_base_seconds,
                connector=connector,
            )
            started = time.perf_counter()
            report = await sync.run()
            total = time.perf_counter() - started
        split = Split(
            total,
            connector.listing,
            connector.fetch,
            connector.parse,
            sync.applying,
            connector.requests,
        )
        return split, report

    return asyncio.run(go())


def connector_alone(url: str) -> tuple[float, int, int]:
    """The ComfyUI connector by itself over a full pass (no catalog): seconds, pages, items."""
    from gallerysync.sources.base import ListMode
    from gallerysync.sources.comfyui.connector import ComfyUISource
    from gallerysync.sources.http import new_session

    async def go() -> tuple[float, int, int]:
        async with new_session() as session:
            connector = ComfyUISource(url, session, include_temp=False)
            cursor, pages, items = None, 0, 0
            started = time.perf_counter()
            while True:
                page = await connector.list_page("image", cursor, mode=ListMode.FULL, since=None)
                pages += 1
                items += len(page.items)
                if page.done:
                    break
                cursor = page.cursor
            return time.perf_counter() - started, pages, items

    return asyncio.run(go())


def bench_metadata(results: Results, sizes: RemoteSizes, homes: Path) -> None:
    from gallerysync.sources.comfyui.connector import FULL_PAGE

    n_entries, per = sizes.entries, sizes.images_per_entry
    n_assets = n_entries * per
    double = DoubleProcess(homes / "comfy-metadata", homes / "comfy-metadata.log")
    try:
        log(f"metadata: {n_entries:,} history entries x {per} images in the ComfyUI double ...")
        made = double.call("bulk", count=n_entries, images=per, content="tiny")
        expect(results, "double: prompts added", made["prompts"], n_entries)
        stats = double.stats()
        expect(results, "double: history length", stats["history"], n_entries)

        log(
            f"metadata: full sync (download off) and raw SQLite inserts of the same rows, "
            f"{sizes.rounds} rounds, fresh home each ..."
        )
        runs: list[dict[str, Any]] = []
        limit_runs: list[float] = []
        home: Home | None = None
        rows: Rows | None = None
        per_tx = FULL_PAGE * per
        for attempt in range(sizes.rounds):
            if home is not None:
                home.close(remove=True)
            home = Home(homes / f"metadata-{attempt}", "comfyui", double.url)
            # the engine and the limit back to back, taking turns at going first (the limit
            # inserts the rows the first round's sync wrote)
            if rows is not None and attempt % 2 == 1:
                limit_runs.append(sqlite_inserts(homes / "limit-metadata.db", rows, per_tx))
            runs.append(_full_sync(results, home, double, n_assets))
            if rows is None:
                rows = source_rows(home.path, home.source.id)
                expect(results, "limit rows: assets", len(rows.assets), n_assets)
                expect(results, "limit rows: origins", len(rows.origins), n_assets)
            if attempt % 2 == 0:
                limit_runs.append(sqlite_inserts(homes / "limit-metadata.db", rows, per_tx))
            log(
                f"  sync {runs[-1]['seconds']:.2f}s = {n_assets / runs[-1]['seconds']:,.0f} "
                f"assets/s ({runs[-1]['history_requests']} requests); raw inserts "
                f"{limit_runs[-1]:.2f}s = {n_assets / limit_runs[-1]:,.0f} rows/s"
            )
        assert home is not None and rows is not None
        sync_s = median([r["seconds"] for r in runs])
        limit_s = median(limit_runs)
        typical = min(runs, key=lambda r: abs(r["seconds"] - sync_s))

        log(f"metadata: smart sync with no change, {sizes.smart_runs} runs ...")
        smart: list[float] = []
        bare: list[float] = []
        smart_reports = []
        one = f"{double.url}/history?max_items=1"
        before = double.stats()["requests"].get("/history", 0)
        for _ in range(sizes.smart_runs):
            started = time.perf_counter()
            report = home.runtime.sync_remote(home.source, mode="smart")
            smart.append(time.perf_counter() - started)
            smart_reports.append(report.as_json())
            expect(results, "smart sync: status", report.status, "ok")
            expect(results, "smart sync: skipped types", report.skipped_types, ["image"])
            expect(results, "smart sync: listed", report.counts.get("listed", 0), 0)
            bare += round_trips(one, 1)
        smart_requests = double.stats()["requests"].get("/history", 0) - before
        expect(results, "smart syncs: /history requests", smart_requests, 2 * sizes.smart_runs)
        keepalive = keepalive_round_trips(one, sizes.smart_runs)
        smart_ms, bare_ms = median(smart) * 1000, median(bare) * 1000
        log(f"  smart {smart_ms:.1f} ms, bare round trip {bare_ms:.1f} ms (medians)")
        home.close(remove=True)

        log("metadata: instrumented full sync (where the time goes), fresh home ...")
        timed_home = Home(homes / "metadata-timed", "comfyui", double.url)
        split, timed_report = instrumented_sync(timed_home)
        timed_home.close(remove=True)
        expect(results, "instrumented sync: added", timed_report.counts.get("added"), n_assets)
        other = split.total - split.listing - split.apply
        log(
            f"  total {split.total:.2f}s: listing {split.listing:.2f}s (fetch {split.fetch:.2f}s, "
            f"parse {split.parse:.2f}s), apply {split.apply:.2f}s, other {other:.2f}s"
        )

        log("metadata: the ComfyUI connector alone over every page, and bare GETs ...")
        alone = [connector_alone(double.url) for _ in range(sizes.repeats)]
        alone_s = min(s for s, _, _ in alone)
        _s, alone_pages, alone_items = alone[0]
        expect(results, "connector alone: items", alone_items, n_assets)
        pages = [history_pages(double.url, n_entries, FULL_PAGE) for _ in range(sizes.repeats)]
        pages_s = min(s for s, _ in pages)
        history_bytes = pages[0][1]
        log(f"  connector {alone_s:.2f}s ({alone_pages} pages), bare GETs {pages_s:.2f}s")
    finally:
        code = double.stop()
        expect(results, "ComfyUI double (metadata): exit code", code, 0)
        problems = [line for line in double.log_text().splitlines() if "Traceback" in line]
        expect(results, "ComfyUI double (metadata): tracebacks in its log", problems[:5], [])

    rate = n_assets / sync_s
    limit_rate = n_assets / limit_s
    rows_mb = rows.meta_bytes / 1e6
    each_full = ", ".join(f"{r['seconds']:.2f}" for r in runs)
    each_limit = ", ".join(f"{s:.2f}" for s in limit_runs)
    each_smart = ", ".join(f"{s * 1000:.1f}" for s in smart)
    results.raw["metadata"] = {
        "entries": n_entries,
        "assets": n_assets,
        "full_syncs": runs,
        "limit_seconds": limit_runs,
        "limit_rows_per_transaction": per_tx,
        "origin_meta_bytes": rows.meta_bytes,
        "smart_seconds": smart,
        "smart_reports": smart_reports,
        "bare_round_trip_seconds": bare,
        "keepalive_round_trip_seconds": keepalive,
        "instrumented": asdict(split),
        "instrumented_report": timed_report.as_json(),
        "connector_alone": [{"seconds": s, "pages": p, "items": i} for s, p, i in alone],
        "bare_history_pages": [{"seconds": s, "bytes": b} for s, b in pages],
    }
    results.lines += [
        Line(
            f"metadata sync, {n_entries:,} ComfyUI entries = {n_assets:,} assets",
            rate,
            "assets/s",
            limit_rate,
            f"raw SQLite inserts of the same {n_assets:,} asset + origin rows",
            ">= 0.35",
            f"`Runtime.sync_remote(mode='full')`, download off, fresh home each run: "
            f"{sync_s:.2f}s, median of {sizes.rounds} rounds "
            f"({each_full} s; raw inserts {each_limit} s, taking turns at going first); "
            f"{typical['report']['pages']} pages, {typical['history_requests']} /history "
            f"requests; the double used {typical['double_cpu_seconds']:.2f}s CPU; catalog "
            f"{typical['catalog_bytes'] / 1e6:,.0f} MB. Limit: gallerysync's own assets/origins "
            f"DDL in a fresh WAL file, synchronous=NORMAL, {per_tx} assets + {per_tx} origins "
            f"per transaction (one {FULL_PAGE}-entry page), the rows read back from the "
            f"engine's catalog (origin meta {rows_mb:,.0f} MB, "
            f"{rows.meta_bytes / n_assets:,.0f} B each); median. Not in the "
            "limit: the engine's change-feed rows (one per asset), run progress and cursor "
            "rows, and FK checks (off in the limit)",
        ),
        Line(
            "metadata sync vs. what other tools report",
            rate,
            "assets/s",
            REPORTED_RATE,
            "tools in this space report about 18 images per second",
            "info",
            "context only: a reported figure, not measured here",
        ),
        Line(
            "  split: fetch + parse /history (in list_page)",
            split.listing,
            "s",
            split.total,
            "the instrumented sync's total",
            "info",
            f"fetch (HTTP GET) {split.fetch:.2f}s, parse_history (decode included) "
            f"{split.parse:.2f}s, "
            f"paging {split.listing - split.fetch - split.parse:.2f}s; {split.requests} "
            "requests. Bench-side subclasses of ComfyUISource and RemoteSync time each step "
            "of one more full sync on a fresh home",
        ),
        Line(
            "  split: apply pages (catalog transactions)",
            split.apply,
            "s",
            split.total,
            "the instrumented sync's total",
            "info",
            f"inside RemoteSync._apply (apply_items + cursor + progress, one transaction per "
            f"page). The pass fetches and parses the next page while one is applied, so the "
            f"two splits overlap and can add up to more than the total; total minus both: "
            f"{other:.2f}s",
        ),
        Line(
            f"ComfyUI connector alone, full listing of {n_entries:,} entries",
            alone_s,
            "s",
            pages_s,
            f"bare aiohttp GET of the same {FULL_PAGE}-entry pages, bodies not decoded",
            "info",
            f"{alone_pages} pages, {alone_items:,} items, no catalog; best of {sizes.repeats}; "
            f"/history bodies {history_bytes / 1e6:,.0f} MB in all",
        ),
        Line(
            f"smart sync, no change, {n_entries:,}-entry source",
            smart_ms,
            "ms",
            bare_ms,
            "bare aiohttp GET /history?max_items=1, fresh connection",
            "info",
            f"`Runtime.sync_remote(mode='smart')` after the full sync, median of "
            f"{sizes.smart_runs} (each {each_smart} ms; the "
            f"first is the one right after the full sync); every run skipped the type after "
            f"one /history?max_items=1. The limit alternates with it: a new session and "
            f"connection per request, each in its own asyncio.run, as the sync does; on a kept "
            f"connection it takes {median(keepalive) * 1000:.1f} ms (the double's listening "
            "socket is made with proto 0, so asyncio does not set TCP_NODELAY on its "
            "connections: a small reply on a reused connection waits for a delayed ACK; "
            "ComfyUI's aiohttp server sets TCP_NODELAY)",
            bound="< 100",
        ),
    ]


def _full_sync(
    results: Results, home: Home, double: DoubleProcess, n_assets: int
) -> dict[str, Any]:
    """One timed `Runtime.sync_remote(mode='full')` of the double into `home`."""
    before, cpu = double.stats()["requests"].get("/history", 0), double.cpu_seconds()
    started = time.perf_counter()
    report = home.runtime.sync_remote(home.source, mode="full")
    seconds = time.perf_counter() - started
    requests = double.stats()["requests"].get("/history", 0) - before
    expect(results, "metadata full sync: status", report.status, "ok")
    expect(results, "metadata full sync: added", report.counts.get("added"), n_assets)
    expect(results, "metadata full sync: listed", report.counts.get("listed"), n_assets)
    return {
        "seconds": seconds,
        "report": report.as_json(),
        "history_requests": requests,
        "double_cpu_seconds": double.cpu_seconds() - cpu,
        "catalog_bytes": home.catalog_bytes(),
    }
