"""Composition root: the only module that picks concrete implementations and wires them.

The CLI calls into here; `serve` runs the long-lived pieces (HTTP, start-up scans, watchers,
job workers) in one asyncio loop until SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import logging
import os
import signal
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from gallerysync import __version__
from gallerysync.blobs.local import LocalBlobStore
from gallerysync.catalog import Catalog, schema
from gallerysync.catalog.feed import compact
from gallerysync.catalog.jobs import job_counts
from gallerysync.catalog.remote import FETCH_WANTED, pending_origin_ids
from gallerysync.catalog.sources import find_source, get_source, list_sources
from gallerysync.catalog.uploads import UPLOAD_KIND
from gallerysync.config import Settings
from gallerysync.domain import Source
from gallerysync.errors import ConfigError, InvalidInputError, NotFoundError
from gallerysync.events.wait import sleep_unless
from gallerysync.sources.folder import KIND as FOLDER
from gallerysync.sync.folder import FolderScan, Progress, ScanReport
from gallerysync.sync.live import folder_watcher
from gallerysync.watch.watcher import SettleWatcher
from gallerysync.worker import run_workers

if TYPE_CHECKING:  # remote sources pull in aiohttp: imported when used (CLI start-up time)
    from gallerysync.sync.download import DownloadProgress, DownloadReport
    from gallerysync.sync.follow import RemoteFollower
    from gallerysync.sync.remote import RemoteProgress, RemoteReport

__all__ = ["Runtime", "check_bind_host", "open_runtime", "serve"]

log = logging.getLogger(__name__)
SOURCE_REFRESH_SECONDS = 5.0
HEAD_POLL_SECONDS = 1.0
COMPACT_EVERY_SECONDS = 3600.0


@dataclass
class Runtime:
    settings: Settings
    catalog: Catalog
    blobs: LocalBlobStore

    def close(self) -> None:
        self.catalog.close()

    def scan(
        self,
        source: Source,
        *,
        mode: str = "full",
        cancel: threading.Event | None = None,
        progress: Progress | None = None,
    ) -> ScanReport:
        """Scan one folder source (under its lock: a second scanner waits, unless cancelled)."""
        if source.kind != FOLDER:
            raise InvalidInputError(f"source {source.name!r} is a {source.kind} source")
        return FolderScan(
            self.catalog,
            source,
            workers=self.settings.effective_hash_workers,
            batch_size=self.settings.scan_batch_size,
            max_attempts=self.settings.job_max_attempts,
            cancel=cancel,
            progress=progress,
        ).run(mode=mode)

    def sync_remote(
        self,
        source: Source,
        *,
        mode: str = "smart",
        since: int | None = None,
        force: bool = False,
        max_pages: int | None = None,
        cancel: threading.Event | None = None,
        progress: RemoteProgress | None = None,
    ) -> RemoteReport:
        """Phase 1 of one remote source (its metadata), in a fresh event loop."""
        from gallerysync.sync.remote import RemoteSync

        return asyncio.run(
            RemoteSync(
                self.catalog,
                source,
                mode=mode,
                since=since,
                force=force,
                max_pages=max_pages,
                sweep_max_fraction=self.settings.sweep_max_fraction,
                retry_base=self.settings.retry_base_seconds,
                cancel=cancel,
                progress=progress,
            ).run()
        )

    def download(
        self,
        *,
        source_ids: Sequence[str],
        asset_ids: Sequence[str] | None = None,
        statuses: Sequence[str] = FETCH_WANTED,
        concurrency: int | None = None,
        progress: DownloadProgress | None = None,
    ) -> DownloadReport:
        """Phase 2: fetch the bytes of these sources' origins (of `asset_ids` only, if given;
        named assets are fetched whatever their status, failed ones included)."""
        from gallerysync.sync.download import Downloader

        with self.catalog.read() as conn:
            wanted = (*statuses, "failed", "done") if asset_ids is not None else statuses
            origin_ids = pending_origin_ids(
                conn, source_ids=source_ids, statuses=wanted, asset_ids=asset_ids
            )
            if asset_ids is not None:
                known = {
                    r[0]
                    for r in conn.execute(
                        select(schema.assets.c.id).where(schema.assets.c.id.in_(list(asset_ids)))
                    )
                }
                unknown = sorted(set(asset_ids) - known)
                if unknown:
                    raise NotFoundError(f"no asset with id {unknown[0]}")

        async def run() -> DownloadReport:
            async with Downloader(
                self.catalog,
                self.blobs,
                concurrency=concurrency or self.settings.download_concurrency,
                base_delay=self.settings.retry_base_seconds,
            ) as downloader:
                report = await downloader.download(origin_ids, progress=progress)
            if asset_ids is not None:  # named assets with nothing remote to fetch
                report.skipped += max(0, len(set(asset_ids)) - len(origin_ids))
            return report

        return asyncio.run(run())

    def source_by_id(self, source_id: str) -> Source:
        with self.catalog.read() as conn:
            return get_source(conn, source_id)

    def sources_named(self, names: Sequence[str]) -> list[Source]:
        with self.catalog.read() as conn:
            if not names:
                return list_sources(conn)
            return [find_source(conn, name) for name in names]


def open_runtime(settings: Settings) -> Runtime:
    settings.home.mkdir(parents=True, exist_ok=True)
    catalog = Catalog.open(settings.catalog_url)
    blobs = LocalBlobStore(settings.blobs_dir)
    removed = blobs.clean_temp()
    if removed:
        log.info("removed %d temp files left by an interrupted write", removed)
    return Runtime(settings, catalog, blobs)


def check_bind_host(host: str, *, auth: bool) -> None:
    """Refuse a non-loopback address unless auth is on: without it, anyone who can reach the
    port would act as the local owner."""
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError as exc:
        raise ConfigError(f"--host {host!r} is not an IP address") from exc
    if not loopback and not auth:
        raise ConfigError(
            f"refusing to bind {host} with auth off: anyone reaching it would act as the local "
            "owner. Set GALLERYSYNC_AUTH=on (and create users and tokens: gallerysync user add, "
            "gallerysync token create), or bind a loopback address (127.0.0.1, ::1)"
        )


def tune_garbage_collector() -> None:
    """For a long-running server: move everything alive after start-up out of the collector's
    sight (`gc.freeze`) and collect the young generation less often. Measured with 1,000 open
    streams (bench/live/): the default thresholds ran full collections of ~140 ms over
    ~300,000 long-lived objects about once a second, setting the p99 stream latency; only
    cyclic garbage waits longer (reference counting frees everything else at once)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


@dataclass
class _ServeState:
    scans_running: int = 0
    watchers: dict[str, tuple[SettleWatcher, asyncio.Task[None], asyncio.Event]] = field(
        default_factory=dict
    )
    last_reports: dict[str, dict[str, object]] = field(default_factory=dict)
    followers: dict[str, tuple[RemoteFollower, asyncio.Task[None], asyncio.Event]] = field(
        default_factory=dict
    )


async def serve(runtime: Runtime, host: str, port: int) -> None:
    """Run until SIGINT/SIGTERM: HTTP, start-up scans (background), watchers, job workers."""
    # Imported here: other commands need no web server, and CLI start-up time matters.
    import uvicorn

    from gallerysync.api.app import create_app
    from gallerysync.events.hub import ChangeHub
    from gallerysync.sync.download import Downloader
    from gallerysync.sync.follow import RemoteFollower

    class _Server(uvicorn.Server):
        """uvicorn without its own signal capture: we handle SIGINT/SIGTERM, shut every task
        down and exit 0 (uvicorn would re-raise the signal and skip our clean-up)."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    check_bind_host(host, auth=runtime.settings.auth)
    state = _ServeState()
    stop = asyncio.Event()
    cancel_scans = threading.Event()
    settings = runtime.settings

    def health_details() -> dict[str, Any]:
        with runtime.catalog.read() as conn:
            sources = list_sources(conn)
            jobs = job_counts(conn)
        return {
            "version": __version__,
            "startup_scan": "running" if state.scans_running else "done",
            "sources": [
                {
                    "name": s.name,
                    "kind": s.kind,
                    "status": s.status.value,
                    "watching": (
                        s.id in state.watchers and state.watchers[s.id][0].watching.is_set()
                    )
                    or s.id in state.followers,
                    "last_scan": state.last_reports.get(s.id),
                }
                for s in sources
            ],
            "jobs": jobs,
        }

    loop = asyncio.get_running_loop()
    hub = ChangeHub(loop, await asyncio.to_thread(runtime.catalog.head))
    runtime.catalog.add_commit_listener(hub.publish)

    def start_sync(source_id: str, mode: str) -> None:
        """Called by `POST /api/sources/{id}/sync`, on the event loop."""
        if source_id in state.followers:
            state.followers[source_id][0].request(mode)
            return

        async def run() -> None:
            source = await asyncio.to_thread(runtime.source_by_id, source_id)
            try:
                await asyncio.to_thread(runtime.scan, source, mode=mode, cancel=cancel_scans)
            except Exception:
                log.exception("sync of %s failed", source.name)

        background.append(asyncio.create_task(run(), name=f"sync:{source_id}"))

    on_demand = Downloader(
        runtime.catalog, runtime.blobs, concurrency=settings.download_concurrency
    )
    await on_demand.__aenter__()
    app = create_app(
        runtime.catalog,
        hub,
        blobs=runtime.blobs,
        heartbeat_seconds=settings.heartbeat_seconds,
        auth_required=settings.auth,
        health_details=health_details,
        start_sync=start_sync,
        fetch_asset=on_demand.fetch_asset,
        fetch_thumbnail=on_demand.fetch_thumbnail,
        upload_max_bytes=settings.upload_max_bytes,
    )
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", lifespan="off", access_log=False
    )
    server = _Server(config)

    def on_signal() -> None:
        if server.should_exit:  # a second Ctrl-C: the user does not want to wait
            log.warning("second signal: exiting now")
            os._exit(130)
        server.should_exit = True
        hub.close()  # open change streams end, so the graceful shutdown does not wait on them

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)

    async def scan_in_background(source: Source) -> None:
        state.scans_running += 1
        try:
            report = await asyncio.to_thread(
                runtime.scan, source, mode="smart", cancel=cancel_scans
            )
            state.last_reports[source.id] = report.as_json()
            log.info("start-up scan of %s: %s", source.name, report.as_json())
        except Exception:
            log.exception("start-up scan of %s failed", source.name)
        finally:
            state.scans_running -= 1

    def start_source(source: Source) -> None:
        watcher = folder_watcher(
            runtime.catalog,
            source,
            settle_seconds=settings.settle_seconds,
            max_attempts=settings.job_max_attempts,
            rescan=lambda: runtime.scan(source, cancel=cancel_scans),
        )
        source_stop = asyncio.Event()
        task = asyncio.create_task(watcher.run(source_stop), name=f"watch:{source.name}")
        state.watchers[source.id] = (watcher, task, source_stop)
        background.append(asyncio.create_task(scan_in_background(source)))

    def start_follower(source: Source) -> None:
        def remember(report: dict[str, Any]) -> None:
            state.last_reports[source.id] = report

        follower = RemoteFollower(
            runtime.catalog,
            source,
            interval_seconds=settings.remote_sync_seconds,
            full_every_seconds=settings.remote_full_sync_hours * 3600,
            sweep_max_fraction=settings.sweep_max_fraction,
            retry_base=settings.retry_base_seconds,
            cancel=cancel_scans,
            on_report=remember,
        )
        source_stop = asyncio.Event()
        task = asyncio.create_task(follower.run(source_stop), name=f"follow:{source.name}")
        state.followers[source.id] = (follower, task, source_stop)

    async def sync_followers(remote: list[Source]) -> None:
        wanted = {s.id for s in remote}
        for source_id in [sid for sid in state.followers if sid not in wanted]:
            _follower, task, source_stop = state.followers.pop(source_id)
            source_stop.set()
            await task
        for source in remote:
            if source.id not in state.followers:
                start_follower(source)

    async def sync_watchers() -> None:
        """Start watchers for new folder sources and followers for new remote ones; stop
        those of removed sources."""
        every = await asyncio.to_thread(runtime.sources_named, [])
        await sync_followers([s for s in every if s.kind not in (FOLDER, UPLOAD_KIND)])
        sources = [s for s in every if s.kind == FOLDER]
        wanted = {s.id: s for s in sources}
        for source_id in [sid for sid in state.watchers if sid not in wanted]:
            _watcher, task, source_stop = state.watchers.pop(source_id)
            source_stop.set()
            await task
        for source in sources:
            if source.id not in state.watchers:
                start_source(source)

    async def refresh_sources() -> None:
        while not stop.is_set():
            try:
                await sync_watchers()
            except Exception:  # the catalog is away for a moment: try again next round
                log.exception("could not refresh the list of sources")
            await sleep_unless(stop, SOURCE_REFRESH_SECONDS)

    async def follow_other_processes() -> None:
        """Writes by other processes (a CLI `sync`) do not call our commit listeners: notice
        them by reading the head (one tiny query a second)."""
        while not stop.is_set():
            with contextlib.suppress(Exception):
                hub.publish(await asyncio.to_thread(runtime.catalog.head))
            await sleep_unless(stop, HEAD_POLL_SECONDS)

    async def compact_feed() -> None:
        retention_ms = int(settings.tombstone_retention_days * 86_400_000)
        while not stop.is_set():
            try:
                removed = await asyncio.to_thread(
                    compact, runtime.catalog, tombstone_retention_ms=retention_ms
                )
                log.info("change feed compacted: %s", removed)
            except Exception:
                log.exception("change feed compaction failed")
            await sleep_unless(stop, COMPACT_EVERY_SECONDS)

    background: list[asyncio.Task[None]] = [
        asyncio.create_task(follow_other_processes(), name="head"),
        asyncio.create_task(compact_feed(), name="compact"),
    ]
    refresher = asyncio.create_task(refresh_sources(), name="sources")
    workers = asyncio.create_task(
        run_workers(
            runtime.catalog,
            runtime.blobs,
            settings.job_workers,
            stop,
            download_concurrency=settings.download_concurrency,
        ),
        name="workers",
    )
    tune_garbage_collector()
    try:
        await server.serve()
    finally:
        runtime.catalog.remove_commit_listener(hub.publish)
        stop.set()
        cancel_scans.set()
        for _watcher, _task, source_stop in state.watchers.values():
            source_stop.set()
        for _follower, _task, source_stop in state.followers.values():
            source_stop.set()
        await asyncio.gather(
            refresher,
            workers,
            *background,
            *(task for _w, task, _s in state.watchers.values()),
            *(task for _f, task, _s in state.followers.values()),
            return_exceptions=True,
        )
        await on_demand.__aexit__(None, None, None)
