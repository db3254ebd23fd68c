"""Keep one remote source current while `serve` runs: a smart sync at start-up, then on a
schedule, at once when the source hints at a change, and a full reconcile now and then.

Hints only wake the loop — the sync itself decides what changed, from its watermark — so a
lost or duplicated hint costs nothing but latency. Hints arriving while a sync runs coalesce
into one more sync after it. A dropped hint connection is re-opened with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from gallerysync.catalog import Catalog
from gallerysync.catalog.sources import get_source
from gallerysync.domain import Source
from gallerysync.errors import GallerySyncError
from gallerysync.events.wait import sleep_unless, wait_any
from gallerysync.sources.base import SupportsLiveHints
from gallerysync.sources.http import backoff_delay, new_session
from gallerysync.sources.registry import get_kind
from gallerysync.sync.remote import RemoteSync

__all__ = ["RemoteFollower"]

log = logging.getLogger(__name__)


class RemoteFollower:
    def __init__(
        self,
        catalog: Catalog,
        source: Source,
        *,
        interval_seconds: float,
        full_every_seconds: float,
        sweep_max_fraction: float,
        retry_base: float,
        cancel: threading.Event,
        on_report: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.catalog = catalog
        self.source = source
        self.interval = interval_seconds
        self.full_every = full_every_seconds
        self.sweep_max_fraction = sweep_max_fraction
        self.retry_base = retry_base
        self.cancel = cancel
        self.on_report = on_report
        self.wake = asyncio.Event()
        self.want_full = False
        self.syncs = 0

    def request(self, mode: str) -> None:
        """Ask for a sync now (`POST /api/sources/{id}/sync`)."""
        if mode == "full":
            self.want_full = True
        self.wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        hints = asyncio.create_task(self._follow_hints(stop), name=f"hints:{self.source.name}")
        last_full = time.monotonic()
        try:
            while not stop.is_set():
                self.wake.clear()
                full = self.want_full or time.monotonic() - last_full >= self.full_every
                self.want_full = False
                await self._sync("full" if full else "smart")
                if full:
                    last_full = time.monotonic()
                await wait_any(stop, self.wake, timeout=self.interval)
        finally:
            hints.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await hints

    async def _sync(self, mode: str) -> None:
        try:
            source = await asyncio.to_thread(self._fresh_source)
            report = await RemoteSync(
                self.catalog,
                source,
                mode=mode,
                sweep_max_fraction=self.sweep_max_fraction,
                retry_base=self.retry_base,
                cancel=self.cancel,
            ).run()
            self.syncs += 1
            if self.on_report is not None:
                self.on_report(report.as_json())
            log.info("%s sync of %s: %s", mode, source.name, report.as_json())
        except Exception:  # keep following: the next round may succeed
            log.exception("sync of %s failed", self.source.name)

    def _fresh_source(self) -> Source:
        with self.catalog.read() as conn:
            return get_source(conn, self.source.id)

    async def _follow_hints(self, stop: asyncio.Event) -> None:
        attempt = 0
        while not stop.is_set():
            try:
                async with new_session(limit=2) as session:
                    connector = get_kind(self.source.kind).connect(self.source.options, session)
                    if not isinstance(connector, SupportsLiveHints):
                        return
                    async for hint in connector.live_hints():
                        attempt = 0
                        if hint == "reset":
                            self.want_full = True
                        self.wake.set()
            except asyncio.CancelledError:
                raise
            except GallerySyncError as exc:
                log.info("live hints of %s: %s", self.source.name, exc)
            except Exception:
                log.exception("live hints of %s failed", self.source.name)
            attempt += 1
            delay = backoff_delay(min(attempt, 6), base=1.0, cap=60.0, retry_after=None)
            await sleep_unless(stop, max(1.0, delay))
