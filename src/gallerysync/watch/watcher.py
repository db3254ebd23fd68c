"""Watch a directory tree and report paths once they have settled.

Every event (create, modify, delete, rename) puts its path in a pending table with the file's
`(size, mtime_ns)` at that moment. A path is ready when no event touched it for `settle`
seconds *and* its stat is still the one recorded: a file written slowly in chunks is reported
once, complete. Ready paths are reported together, so the delete and create halves of a move
arrive in one batch. Temporary names (editors, browsers, cloud clients) never enter the table.

The watcher knows nothing about catalogs: the owner passes `on_ready` (apply a batch; return
the paths that must wait longer) and `on_root_lost` / `on_root_back`. Folder sources and the
push client share it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import watchfiles

from gallerysync.events.wait import sleep_unless
from gallerysync.watch.names import is_ignored_name

__all__ = ["SettleWatcher", "root_looks_mounted"]

log = logging.getLogger(__name__)
OnReady = Callable[[list[str], set[str]], Awaitable[list[str]]]
OnRoot = Callable[[], Awaitable[None]]


@dataclass
class _Pending:
    last_event: float
    stat: tuple[int, int] | None


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = path.lstat()
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns)


def root_looks_mounted(root: Path) -> bool:
    """A root that exists, is a directory and has at least one entry."""
    try:
        with os.scandir(root) as entries:
            return next(entries, None) is not None
    except OSError:
        return False


class SettleWatcher:
    """Watch `root` recursively until `stop` is set; see the module docstring."""

    def __init__(
        self,
        root: Path,
        *,
        settle_seconds: float,
        on_ready: OnReady,
        on_root_lost: OnRoot | None = None,
        on_root_back: OnRoot | None = None,
        offline_poll_seconds: float = 5.0,
        name: str = "",
    ) -> None:
        self.root = root
        self.settle = settle_seconds
        self.on_ready = on_ready
        self.on_root_lost = on_root_lost
        self.on_root_back = on_root_back
        self.offline_poll = offline_poll_seconds
        self.name = name or str(root)
        self.pending: dict[str, _Pending] = {}
        self.watching = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Watch until `stop`. Never dies of an error: it logs, waits, resynchronises (the
        `on_root_back` callback: a full rescan) so nothing that happened meanwhile is lost."""
        was_offline = False
        resync = False
        while not stop.is_set():
            try:
                if not root_looks_mounted(self.root):
                    if not was_offline and self.on_root_lost is not None:
                        await self.on_root_lost()
                    was_offline = True
                    self.watching.clear()
                    await sleep_unless(stop, self.offline_poll)
                    continue
                if was_offline or resync:
                    log.info("%s: root is back or the watcher restarted; rescanning", self.name)
                    if self.on_root_back is not None:
                        await self.on_root_back()
                    was_offline = resync = False
                await self._watch(stop)
            except Exception:
                log.exception("%s: watcher failed; restarting", self.name)
                self.watching.clear()
                resync = True
                await sleep_unless(stop, self.offline_poll)

    async def _watch(self, stop: asyncio.Event) -> None:
        root_id = os.stat(self.root)
        tick_ms = max(20, int(self.settle * 1000 / 4))
        async for changes in watchfiles.awatch(
            self.root,
            stop_event=stop,
            debounce=tick_ms,
            step=20,
            rust_timeout=tick_ms,
            yield_on_timeout=True,
            recursive=True,
            watch_filter=None,
            ignore_permission_denied=True,
        ):
            self.watching.set()
            now = time.monotonic()
            for _change, raw in changes:
                try:
                    rel = Path(raw).relative_to(self.root).as_posix()
                except ValueError:
                    continue
                if rel in ("", ".") or any(is_ignored_name(p) for p in rel.split("/")):
                    continue
                self.pending[rel] = _Pending(now, _stat(self.root / rel))
            try:
                current = os.stat(self.root)
            except OSError:
                return
            if (current.st_dev, current.st_ino) != (root_id.st_dev, root_id.st_ino):
                return  # the root was replaced (remounted): start over
            if not root_looks_mounted(self.root):
                return
            await self._report_ready()

    async def _report_ready(self) -> None:
        now = time.monotonic()
        ready: list[str] = []
        for rel, item in list(self.pending.items()):
            if now - item.last_event < self.settle:
                continue
            stat = _stat(self.root / rel)
            if stat != item.stat:
                self.pending[rel] = _Pending(now, stat)
                continue
            ready.append(rel)
        if not ready:
            return
        for rel in ready:
            del self.pending[rel]
        try:
            retry = await self.on_ready(ready, set(self.pending))
        except Exception:
            now = time.monotonic()
            for rel in ready:  # nothing is dropped: they wait for the next settle period
                self.pending.setdefault(rel, _Pending(now, _stat(self.root / rel)))
            raise
        for rel in retry:
            self.pending[rel] = _Pending(time.monotonic(), _stat(self.root / rel))
