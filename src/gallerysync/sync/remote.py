"""Phase 1 for remote sources: one pipeline, three modes.

A mode only decides what to ask the source for:

- `full`: list everything from the start; afterwards, where the source lists *all* it has
  (`complete_listing`), origins not listed in this pass are tombstoned — behind guards;
- `incremental`: list what changed after the watermark (or after `--since`); where the source
  can list its ids (`id_listing`), deletions are found by id-set difference, same guards;
- `smart`: per entity type, ask the source for its change count after the watermark and skip
  the type when it is 0; otherwise as incremental.

Whatever the mode, every page goes through the same `apply_items` (upserts, change-log entries,
download jobs per policy) in one transaction with the cursor after it, so a killed sync resumes
at the page it stopped at and re-applying a page is a no-op. A pass that did not finish (killed,
or stopped by `--max-pages`) is resumed by the next sync of a compatible mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from gallerysync.catalog import Catalog
from gallerysync.catalog.organise import apply_entities, subjects_linking
from gallerysync.catalog.remote import (
    PassState,
    add_pending,
    apply_items,
    held_count,
    load_pass_state,
    save_pass_state,
    sweep_unseen,
)
from gallerysync.catalog.runs import finish_run, record_progress, start_run
from gallerysync.catalog.sources import create_source, list_sources, set_source_status
from gallerysync.domain import RemoteEntity, RemoteItem, Source, SourceStatus, new_id, now_ms
from gallerysync.errors import (
    ConflictError,
    GallerySyncError,
    InvalidInputError,
    RemoteError,
    SourceResetError,
)
from gallerysync.sources.base import (
    Capabilities,
    ListMode,
    Page,
    RemoteSource,
    SupportsChangeCount,
    SupportsFetchByIds,
    SupportsIdListing,
    SupportsLinkedListing,
    SupportsTotals,
    capabilities_of,
)
from gallerysync.sources.folder.media import guess_media
from gallerysync.sources.http import new_session, with_retries
from gallerysync.sources.registry import DOWNLOAD_POLICIES, get_kind

__all__ = ["MODES", "RemoteReport", "RemoteSync", "add_remote_source"]

log = logging.getLogger(__name__)
MODES = ("full", "incremental", "smart")
RemoteProgress = Callable[[str, int, int], None]  # entity type, pages, items
T = TypeVar("T")


@dataclass
class RemoteReport:
    source: str
    mode: str
    status: str = "ok"  # ok | failed | partial (stopped by --max-pages) | busy
    counts: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    skipped_types: list[str] = field(default_factory=list)
    seconds: float = 0.0
    run_id: str | None = None

    def bump(self, **counts: int) -> None:
        for key, value in counts.items():
            self.counts[key] = self.counts.get(key, 0) + value

    def as_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "mode": self.mode,
            "status": self.status,
            **{k: self.counts.get(k, 0) for k in _COUNT_KEYS},
            "skipped_types": self.skipped_types,
            "errors": self.errors[:50],
            "seconds": round(self.seconds, 3),
            "run_id": self.run_id,
        }


_COUNT_KEYS = (
    "pages",
    "listed",
    "added",
    "updated",
    "unchanged",
    "deleted",
    "merged",
    "refused",
    "to_download",
    "page_retries",
    "resets",
    "rechecked",
)


class RemoteSync:
    """One sync of one remote source. `run()` never raises for a source problem: the report
    (and the recorded run) says what happened."""

    def __init__(
        self,
        catalog: Catalog,
        source: Source,
        *,
        mode: str = "smart",
        since: int | None = None,
        force: bool = False,
        max_pages: int | None = None,
        sweep_max_fraction: float = 0.5,
        page_attempts: int = 4,
        retry_base: float = 0.5,
        cancel: threading.Event | None = None,
        progress: RemoteProgress | None = None,
        connector: RemoteSource | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        self.catalog = catalog
        self.source = source
        self.mode = mode
        self.since = since
        self.force = force
        self.max_pages = max_pages
        self.sweep_max_fraction = sweep_max_fraction
        self.page_attempts = page_attempts
        self.retry_base = retry_base
        self.cancel = cancel or threading.Event()
        self.progress = progress
        self._connector = connector
        self.policy = str(source.options.get("download", "auto"))
        self.report = RemoteReport(source.name, mode)
        self._types: tuple[str, ...] = ()
        self._typed = False  # the source's keys are typed ("tag:7") and link to entities

    async def run(self) -> RemoteReport:
        started = time.perf_counter()
        with contextlib.ExitStack() as locks:
            try:
                await asyncio.to_thread(
                    locks.enter_context,
                    self.catalog.source_lock(self.source.id, wait=True, cancel=self.cancel),
                )
            except GallerySyncError as exc:
                self.report.status = "busy"
                self.report.errors.append(str(exc))
                return self.report
            run_mode = self.mode if self.since is None else "incremental"
            self.report.run_id = await asyncio.to_thread(
                start_run, self.catalog, self.source.id, run_mode
            )
            status, error = "ok", None
            try:
                await self._run_types()
            except GallerySyncError as exc:
                status, error = "failed", f"{type(exc).__name__}: {exc}"
                self.report.errors.append(error)
            except Exception as exc:  # a bug: record it on the run, keep the process alive
                log.exception("sync of %s failed", self.source.name)
                status, error = "failed", f"{type(exc).__name__}: {exc}"
                self.report.errors.append(error)
            if status == "ok" and self.report.status == "partial":
                status = "partial"
            self.report.status = status
            self.report.seconds = time.perf_counter() - started
            await asyncio.to_thread(self._finish, status, error)
        return self.report

    def _finish(self, status: str, error: str | None) -> None:
        assert self.report.run_id is not None
        counts = {k: self.report.counts.get(k, 0) for k in _COUNT_KEYS}
        detail = "; ".join(self.report.errors[:5]) or None
        finish_run(self.catalog, self.report.run_id, status, counts, detail)
        source_status = SourceStatus.ERROR if status == "failed" else SourceStatus.OK
        with self.catalog.write() as tx:
            set_source_status(tx, self.source, source_status, error or "")

    async def _run_types(self) -> None:
        if self._connector is not None:
            await self._run_with(self._connector)
            return
        async with new_session() as session:
            connector = get_kind(self.source.kind).connect(self.source.options, session)
            try:
                await self._run_with(connector)
            finally:
                await connector.close()

    async def _run_with(self, connector: RemoteSource) -> None:
        caps = capabilities_of(connector)
        self._types = tuple(connector.entity_types)
        self._typed = caps.organises
        for entity_type in connector.entity_types:
            if self.cancel.is_set():
                self.report.status = "partial"
                return
            try:
                await self._sync_type(connector, caps, entity_type)
            except SourceResetError as exc:
                if self.mode == "full":
                    raise
                log.warning("%s: %s; reconciling with a full pass", self.source.name, exc)
                self.report.errors.append(f"{entity_type}: {exc}; reconciled with a full pass")
                self.report.bump(resets=1)
                await self._sync_type(connector, caps, entity_type, force_full=True)
            if self.report.status == "partial":
                return

    async def _sync_type(
        self, connector: RemoteSource, caps: Capabilities, etype: str, *, force_full: bool = False
    ) -> None:
        state = await asyncio.to_thread(self._load_state, etype)
        if force_full:
            state = PassState(None, None, state.last_sync_at)
        open_pass = state.open_pass
        want_full = self.mode == "full" or force_full
        resume = open_pass is not None and (open_pass.get("mode") == "full") == want_full
        if resume and self.since is not None and open_pass is not None:
            resume = open_pass.get("since") == self.since
        if (
            not resume
            and not want_full
            and self.mode == "smart"
            and caps.change_counts
            and self.since is None
        ):
            assert isinstance(connector, SupportsChangeCount)
            count = await self._retrying(lambda: connector.change_count(etype, state.watermark))
            if count == 0 and await self._totals_match(connector, caps, etype) is False:
                count = None  # something went away: list, then sweep by id set
            if count == 0:
                self.report.skipped_types.append(etype)
                await self._recheck_dependants(connector, caps, etype, state.pending)
                state.pending = []
                await asyncio.to_thread(self._save_state, etype, state, True)
                return
        list_mode = ListMode.FULL if want_full else ListMode.INCREMENTAL
        if resume and open_pass is not None:
            cursor = open_pass.get("cursor")
            pass_started = int(open_pass.get("started_at") or now_ms())
            since = open_pass.get("since")
        else:
            cursor = None if want_full or self.since is not None else state.watermark
            pass_started, since = now_ms(), self.since
        # a full listing sweeps what it did not see: pages stamp what they saw with the start
        seen_at = pass_started if list_mode == ListMode.FULL and caps.complete_listing else None
        pages = items = 0
        ahead: asyncio.Task[Page] | None = None
        try:
            while True:
                if ahead is None:
                    page = await self._next_page(connector, etype, cursor, list_mode, since)
                else:
                    page, ahead = await ahead, None
                if not page.done and not self._last_page(pages + 1):
                    # fetch and parse the next page while this one is applied (SQLite releases
                    # the interpreter lock): the same requests in the same order, overlapped
                    ahead = asyncio.create_task(
                        self._next_page(connector, etype, page.cursor, list_mode, since)
                    )
                open_next = {
                    "mode": list_mode.value,
                    "started_at": pass_started,
                    "cursor": page.cursor,
                    "since": since,
                }
                state = await self._apply_page(etype, page, state, open_next, seen_at)
                pages += 1
                items += len(page.items)
                if self.progress is not None:
                    self.progress(etype, pages, items)
                if page.done:
                    break
                if self._last_page(pages):
                    self.report.status = "partial"
                    return
                cursor = page.cursor
        finally:
            if ahead is not None:
                ahead.cancel()
                with contextlib.suppress(BaseException):
                    await ahead
        await self._sweep(connector, caps, etype, list_mode, pass_started)
        if list_mode != ListMode.FULL:  # a full pass listed every dependant anyway
            await self._recheck_dependants(connector, caps, etype, state.pending)
        final = PassState(page.cursor, None, state.last_sync_at)
        await asyncio.to_thread(self._save_state, etype, final, True)

    def _last_page(self, pages: int) -> bool:
        """Whether the pass stops (partial) after `pages` pages: `--max-pages` or a cancel."""
        return (self.max_pages is not None and pages >= self.max_pages) or self.cancel.is_set()

    async def _apply_page(
        self,
        etype: str,
        page: Page,
        state: PassState,
        open_next: dict[str, Any],
        seen_at: int | None,
    ) -> PassState:
        """Apply one listed page in one transaction with the pass state that follows it
        (`open_next`: the open pass after this page); returns that state."""
        if page.refused:
            self.report.errors.extend(page.refused)
            self.report.bump(refused=len(page.refused))
        next_state = PassState(
            state.watermark, None if page.done else open_next, state.last_sync_at, state.pending
        )
        if page.done:  # kept open until the sweep has run: a kill re-runs the sweep
            next_state.open_pass = open_next | {"sweep_pending": True}
        await asyncio.to_thread(self._apply, etype, page.items, next_state, seen_at)
        self.report.bump(pages=1)
        return next_state

    async def _totals_match(
        self, connector: RemoteSource, caps: Capabilities, etype: str
    ) -> bool | None:
        """Whether the source has as many items of this type as we hold (sources with typed
        keys and totals): after an incremental pass, equal means nothing was deleted. None
        when the source cannot tell."""
        if not (caps.totals and caps.organises):
            return None
        assert isinstance(connector, SupportsTotals)
        total = await self._retrying(lambda: connector.total(etype))

        def held() -> int:
            with self.catalog.read() as conn:
                return held_count(conn, self.source.id, etype)

        return total == await asyncio.to_thread(held)

    async def _recheck_dependants(
        self, connector: RemoteSource, caps: Capabilities, etype: str, pending: list[str]
    ) -> None:
        """Re-fetch the items of this type whose links may have changed without their own
        version moving, because entities of earlier types (`pending`) changed or went away:
        what links to them at the source now (`list_linked`) and what linked to them here.
        Applied like any page, so post-processing is the same as in every other path."""
        if not pending or not caps.fetch_by_ids:
            return
        assert isinstance(connector, SupportsFetchByIds)
        done: set[str] = set()
        if caps.linked_listing:
            assert isinstance(connector, SupportsLinkedListing)
            cursor: str | None = None
            while True:
                page = await self._retrying(
                    lambda: connector.list_linked(etype, pending, cursor)  # noqa: B023
                )
                await asyncio.to_thread(self._apply, etype, page.items, None, None)
                done.update(item.remote_id for item in page.items)
                if page.done:
                    break
                cursor = page.cursor

        def ours() -> list[str]:
            with self.catalog.read() as conn:
                found = subjects_linking(conn, self.source.id, pending)
            return sorted(k for k in found if k.startswith(etype + ":") and k not in done)

        mine = await asyncio.to_thread(ours)
        for start in range(0, len(mine), 200):
            chunk = mine[start : start + 200]
            items = await self._retrying(lambda: connector.fetch_items(etype, chunk))  # noqa: B023
            await asyncio.to_thread(self._apply, etype, items, None, None)
        self.report.bump(rechecked=len(done) + len(mine))

    async def _next_page(
        self,
        connector: RemoteSource,
        etype: str,
        cursor: str | None,
        mode: ListMode,
        since: int | None,
    ) -> Page:
        return await self._retrying(
            lambda: connector.list_page(etype, cursor, mode=mode, since=since)
        )

    async def _retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        """A request to the source, retried with backoff on `RemoteError` (5xx, 429, resets,
        timeouts); every retry is counted in the run."""

        def on_retry(attempt: int, exc: RemoteError, delay: float) -> None:
            log.info("%s: %s; retry %d in %.1fs", self.source.name, exc, attempt, delay)
            self.report.bump(page_retries=1)

        return await with_retries(
            call, attempts=self.page_attempts, base=self.retry_base, on_retry=on_retry
        )

    async def _sweep(
        self,
        connector: RemoteSource,
        caps: Capabilities,
        etype: str,
        mode: ListMode,
        pass_started: int,
    ) -> None:
        keep: set[str] | None = None
        if mode == ListMode.FULL and caps.complete_listing:
            pass
        elif caps.id_listing:
            if await self._totals_match(connector, caps, etype):
                return  # as many as we hold, and every change was listed: nothing went
            assert isinstance(connector, SupportsIdListing)
            keep = {remote_id async for remote_id in connector.list_ids(etype)}
        else:
            return

        def run() -> None:
            with self.catalog.write() as tx:
                result = sweep_unseen(
                    tx,
                    self.source,
                    seen_since=pass_started if keep is None else None,
                    keep_ids=keep,
                    max_fraction=self.sweep_max_fraction,
                    force=self.force,
                    entity_type=etype if self._typed else None,
                )
                add_pending(tx, self.source.id, self._later(etype), result.deleted_keys)
            self.report.bump(deleted=result.swept)
            if result.skipped_reason:
                self.report.errors.append(f"{etype}: {result.skipped_reason}")

        await asyncio.to_thread(run)

    # --- catalog writes (in a thread) --------------------------------------------------------

    def _load_state(self, etype: str) -> PassState:
        with self.catalog.read() as conn:
            return load_pass_state(conn, self.source.id, etype)

    def _save_state(self, etype: str, state: PassState, finished: bool) -> None:
        with self.catalog.write() as tx:
            save_pass_state(tx, self.source.id, etype, state, finished=finished)

    def _later(self, etype: str) -> tuple[str, ...]:
        return self._types[self._types.index(etype) + 1 :] if etype in self._types else ()

    def _apply(
        self,
        etype: str,
        items: Sequence[RemoteItem | RemoteEntity],
        state: PassState | None,
        seen_at: int | None,
    ) -> None:
        """One page (or re-checked batch) in one transaction, with the cursor after it."""
        entities = [i for i in items if isinstance(i, RemoteEntity)]
        assets = [i for i in items if isinstance(i, RemoteItem)]
        with self.catalog.write() as tx:
            counts: dict[str, int]
            if entities:
                done = apply_entities(tx, self.source, entities, seen_at=seen_at)
                add_pending(tx, self.source.id, self._later(etype), done.changed_keys)
                counts = done.counts()
            else:
                counts = dataclasses.asdict(
                    apply_items(
                        tx,
                        self.source,
                        assets,
                        policy=self.policy,
                        seen_at=seen_at,
                        name_media=guess_media,
                        organise=self._typed,
                    )
                )
            if state is not None:
                save_pass_state(tx, self.source.id, etype, state, finished=False)
            listed = self.report.counts.get("listed", 0) + len(items)
            assert self.report.run_id is not None
            record_progress(tx, self.source, self.report.run_id, listed, 0)
        self.report.bump(listed=len(items), **counts)


def add_remote_source(
    catalog: Catalog,
    kind: str,
    url: str,
    *,
    name: str | None,
    download: str,
    owner_id: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Source:
    """Register a remote source (nothing is fetched yet: `sync` or `serve` does that). The
    same server added twice by one owner is refused: two sources would race on one origin."""
    source_kind = get_kind(kind)
    if download not in DOWNLOAD_POLICIES:
        raise InvalidInputError(
            f"--download must be one of {', '.join(DOWNLOAD_POLICIES)}, not {download!r}"
        )
    options = source_kind.make_options(url, dict(extra or {}))
    options["download"] = download
    owner = owner_id or catalog.default_owner_id
    chosen = name or source_kind.default_name(options)
    with catalog.write() as tx:
        for existing in list_sources(tx.conn, kind):
            if existing.owner_id == owner and existing.options.get("url") == options["url"]:
                raise ConflictError(f"{options['url']} is already added as {existing.name!r}")
        return create_source(
            tx, source_id=new_id(), kind=kind, name=chosen, owner_id=owner, options=options
        )
