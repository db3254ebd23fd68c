"""Keep a folder source current while `serve` runs: a settle-watcher wired to the catalog."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from gallerysync.catalog import Catalog
from gallerysync.domain import ScanCounts, Source
from gallerysync.sync.folder import FolderScan, apply_paths
from gallerysync.watch.watcher import SettleWatcher

__all__ = ["folder_watcher"]


def folder_watcher(
    catalog: Catalog,
    source: Source,
    *,
    settle_seconds: float,
    max_attempts: int = 5,
    offline_poll_seconds: float = 5.0,
    rescan: Callable[[], object] | None = None,
    on_applied: Callable[[Source, ScanCounts], None] | None = None,
) -> SettleWatcher:
    """A watcher whose settled batches are applied to `source` in the catalog.

    `rescan` runs a full scan when the root comes back after being offline (the runtime passes
    one that holds the source's scan lock).
    """

    async def on_ready(paths: list[str], busy: set[str]) -> list[str]:
        counts = await asyncio.to_thread(
            apply_paths,
            catalog,
            source,
            paths,
            max_attempts=max_attempts,
            skip=busy,
            skip_newer_than_ns=time.time_ns() - int(settle_seconds * 1e9),
        )
        if on_applied is not None:
            on_applied(source, counts)
        return counts.deferred_paths

    async def on_root_lost() -> None:
        await asyncio.to_thread(FolderScan(catalog, source).check_online)

    async def on_root_back() -> None:
        await asyncio.to_thread(
            rescan or FolderScan(catalog, source, max_attempts=max_attempts).run
        )

    return SettleWatcher(
        Path(source.options["root"]),
        settle_seconds=settle_seconds,
        on_ready=on_ready,
        on_root_lost=on_root_lost,
        on_root_back=on_root_back,
        offline_poll_seconds=offline_poll_seconds,
        name=source.name,
    )
