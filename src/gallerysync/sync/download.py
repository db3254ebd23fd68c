"""Phase 2: fetch remote bytes into the blob store, verified, never twice.

A download is hashed with BLAKE3 as it streams, into memory when its announced length is small
enough (`MAX_IN_MEMORY`, within a budget of `MEMORY_BUDGET` for all of them) and otherwise into
a locked temp file in the blob store; it is checked against the announced length (a truncated
body is an error, not a blob) and, where the source announced one, the content hash. The group
commit then writes the in-memory ones to (unnamed) temp files in its staging threads — the event
loop never waits on the file system for them — flushes, and names each by its hash. Only then
does one write transaction attach the bytes to the asset (merging with an asset that already
has them).
A killed process leaves at most a temp file, removed at the next start.

Errors are classified by `sources.http`: `RemoteError` (5xx, 429 with `Retry-After`, resets,
timeouts, truncation) is retried with exponential backoff and jitter; `RemoteRefusedError` (4xx)
gives up at once with the reason recorded — a 404 also marks the origin missing (ComfyUI's
history lists files that were deleted). Concurrency is bounded per source.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import io
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from gallerysync.blobs.base import BlobStore, StoredBlob
from gallerysync.blobs.local import BlobWriter, LocalBlobStore
from gallerysync.blobs.thumbnails import ThumbnailError, make_thumbnail
from gallerysync.catalog import Catalog, schema
from gallerysync.catalog.jobs import enqueue_many
from gallerysync.catalog.remote import (
    RemoteOrigin,
    download_job_key,
    get_remote_origin,
    get_remote_origins,
    mark_fetch_failed,
    mark_not_modified,
    pending_origin_ids,
    record_downloads,
)
from gallerysync.catalog.sources import get_source
from gallerysync.domain import Source
from gallerysync.errors import (
    BlobIntegrityError,
    GallerySyncError,
    MalformedResponseError,
    RemoteError,
    RemoteRefusedError,
)
from gallerysync.sources.base import ItemRef, RemoteSource, SupportsThumbnails
from gallerysync.sources.folder.media import MediaError, MediaInfo, probe_bytes, probe_file
from gallerysync.sources.http import backoff_delay, new_session
from gallerysync.sources.registry import get_kind
from gallerysync.sync.group_commit import GroupCommit
from gallerysync.sync.register import thumbnail_jobs
from gallerysync.sync.thumbnails import store_thumbnail

__all__ = ["DownloadReport", "Downloader", "run_download_job"]

log = logging.getLogger(__name__)
MAX_SOURCE_THUMBNAIL = 32 * 1024 * 1024  # a source's "thumbnail" bigger than this is refused
MAX_UNCOMMITTED = 256  # verified downloads waiting for the group commit (each holds a temp fd)
MAX_IN_MEMORY = 8 * 1024 * 1024  # a body announced up to this size is held in memory, not a file
MEMORY_BUDGET = 64 * 1024 * 1024  # in-memory bodies of one Downloader, together
LOAD_CHUNK = 256  # origins read from the catalog at once by a `download` run
DownloadProgress = Callable[[int, int, int], None]  # done, total, bytes


@dataclass
class DownloadReport:
    downloaded: int = 0
    skipped: int = 0
    failed: int = 0
    not_modified: int = 0
    failed_ids: list[str] = field(default_factory=list)  # asset ids
    errors: list[str] = field(default_factory=list)
    bytes: int = 0
    seconds: float = 0.0
    # downloads verified and queued for the group commit, not yet recorded
    queued: list[tuple[RemoteOrigin, asyncio.Future[str], int]] = field(
        default_factory=list, repr=False
    )

    def as_json(self) -> dict[str, Any]:
        return {
            "downloaded": self.downloaded,
            "skipped": self.skipped,
            "failed": self.failed,
            "failed_ids": sorted(set(self.failed_ids)),
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "not_modified": self.not_modified,
            "errors": self.errors[:50],
        }


@dataclass
class _Ready:
    """A verified download waiting for the group commit."""

    origin: RemoteOrigin
    stored: StoredBlob
    media: MediaInfo
    etag: str | None


_Loaded = tuple[RemoteOrigin, Source]


@dataclass
class _Fetched:
    """A download fetched and verified, not yet handed to the group commit."""

    writer: BlobWriter
    ready: _Ready
    held: int  # bytes of the memory budget, until its commit ends


class _OriginFeed:
    """The origins of one `download` run, read from the catalog `LOAD_CHUNK` at a time as the
    workers take them, the next chunk read while the current one is used: the first request
    goes out after one chunk is read, not all of them, and only the metas of about two chunks
    are held at a time — a ComfyUI origin's meta carries its prompt and workflow, thousands of
    objects each that every collection of the old generation would scan again."""

    def __init__(self, ids: list[str], load: Callable[[list[str]], dict[str, _Loaded]]) -> None:
        self._ids = ids
        self._load = load
        self._taken = 0  # ids handed to a read so far
        self._ready: collections.deque[tuple[str, _Loaded | None]] = collections.deque()
        self._reading: asyncio.Task[None] | None = None
        self._failed: BaseException | None = None  # a failed read ends every worker

    async def next(self) -> tuple[str, _Loaded | None] | None:
        """The next origin id with the origin and its source (None when the catalog does not
        have that origin), or None when every id was handed out."""
        while True:
            if self._failed is not None:
                raise self._failed
            if len(self._ready) <= LOAD_CHUNK // 2:
                self._read_ahead()
            if self._ready:
                return self._ready.popleft()
            if self._reading is None:
                return None
            # shielded: a cancelled worker must not cancel the read the others wait for
            await asyncio.shield(self._reading)

    def _read_ahead(self) -> None:
        if self._reading is None and self._taken < len(self._ids):
            chunk = self._ids[self._taken : self._taken + LOAD_CHUNK]
            self._taken += len(chunk)
            self._reading = asyncio.create_task(self._read(chunk))

    async def _read(self, chunk: list[str]) -> None:
        try:
            loaded = await asyncio.to_thread(self._load, chunk)
        except Exception as exc:  # raised by `next` to every worker (not lost in this task)
            self._failed = exc
            return
        finally:
            self._reading = None
        self._ready.extend((origin_id, loaded.get(origin_id)) for origin_id in chunk)


class _Retry(Exception):
    def __init__(self, cause: GallerySyncError) -> None:
        super().__init__(str(cause))
        self.cause = cause


class Downloader:
    """Downloads on one aiohttp session, with one connector per source and a semaphore per
    source. Use as an async context manager."""

    def __init__(
        self,
        catalog: Catalog,
        blobs: BlobStore,
        *,
        concurrency: int = 8,
        attempts: int = 4,
        base_delay: float = 0.5,
        max_delay: float = 30.0,
    ) -> None:
        if not isinstance(blobs, LocalBlobStore):
            raise TypeError("downloads stream into a LocalBlobStore")
        self.catalog = catalog
        self.blobs: LocalBlobStore = blobs
        self.concurrency = max(1, concurrency)
        self.attempts = max(1, attempts)
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._session: Any = None
        self._connectors: dict[str, RemoteSource] = {}
        self._limits: dict[str, asyncio.Semaphore] = {}
        self._inflight: dict[str, asyncio.Future[bool]] = {}
        self._commits: GroupCommit[_Ready, str] = GroupCommit(
            self.blobs, self._record_batch, limit=MAX_UNCOMMITTED
        )
        self._in_memory = 0  # bytes of bodies held in memory, until their commit ends

    async def __aenter__(self) -> Downloader:
        self._session = new_session(limit=max(32, self.concurrency * 2))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._commits.drain()
        for connector in self._connectors.values():
            await connector.close()
        await self._session.close()

    def _connector(self, source: Source) -> RemoteSource:
        if source.id not in self._connectors:
            self._connectors[source.id] = get_kind(source.kind).connect(
                source.options, self._session
            )
            self._limits[source.id] = asyncio.Semaphore(self.concurrency)
        return self._connectors[source.id]

    async def download(
        self, origin_ids: Sequence[str], *, progress: DownloadProgress | None = None
    ) -> DownloadReport:
        """Fetch the bytes of these origins (already-fetched ones are skipped)."""
        report = DownloadReport()
        started = time.perf_counter()
        done = 0
        ids = list(dict.fromkeys(origin_ids))
        total = len(ids)
        feed = _OriginFeed(ids, self._load_many)

        async def worker() -> None:
            nonlocal done
            while (item := await feed.next()) is not None:
                await self._one(*item, report)
                done += 1
                if progress is not None:
                    progress(done, total, report.bytes)

        workers = min(total, self.concurrency * 4) or 0
        await asyncio.gather(*(worker() for _ in range(workers)))
        await self._settle(report)
        report.seconds = time.perf_counter() - started
        return report

    async def fetch_asset(self, asset_id: str) -> bool:
        """On demand (someone opened the original or thumbnail): fetch the asset's bytes from
        its first remote origin whose policy allows it; True when the bytes are now here.
        Concurrent requests for one asset share one download."""
        running = self._inflight.get(asset_id)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._inflight[asset_id] = future
        try:
            ids = await asyncio.to_thread(self._origins_for_asset, asset_id)
            report = DownloadReport()
            for origin_id in ids:
                await self._one(origin_id, None, report)
                await self._settle(report)
                if report.downloaded or report.not_modified:
                    break
            ok = bool(report.downloaded or report.not_modified)
            future.set_result(ok)
            return ok
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
        finally:
            del self._inflight[asset_id]

    async def fetch_thumbnail(self, asset_id: str) -> str | None:
        """On demand, for an asset whose bytes are not here: its source's own thumbnail (Stash's
        `paths.thumbnail`), made into ours — a tile without fetching the original. The hash of
        the stored thumbnail, or None when no origin's source offers one (or it failed: the
        caller falls back to the original)."""
        for origin_id in await asyncio.to_thread(self._origins_for_asset, asset_id):
            origin, source = await asyncio.to_thread(self._load, origin_id)
            if origin.fetch_status != "on-demand":
                continue
            connector = self._connector(source)
            if not isinstance(connector, SupportsThumbnails):
                continue
            try:
                async with connector.open_thumbnail(ItemRef(origin.remote_id, origin.meta)) as s:
                    data = bytearray()
                    async for chunk in s.chunks():
                        data += chunk
                        if len(data) > MAX_SOURCE_THUMBNAIL:
                            raise MalformedResponseError(
                                f"{origin.remote_id}: thumbnail larger than {MAX_SOURCE_THUMBNAIL}"
                            )
                thumb = await asyncio.to_thread(make_thumbnail, io.BytesIO(bytes(data)))
            except (GallerySyncError, ThumbnailError) as exc:
                log.info("source thumbnail of %s: %s", origin.remote_id, exc)
                continue
            return await asyncio.to_thread(
                store_thumbnail, self.catalog, self.blobs, asset_id, thumb
            )
        return None

    def _origins_for_asset(self, asset_id: str) -> list[str]:
        o = schema.origins
        with self.catalog.read() as conn:
            return [
                r[0]
                for r in conn.execute(
                    select(o.c.id)
                    .where(
                        o.c.asset_id == asset_id,
                        o.c.fetch_status.in_(("pending", "on-demand", "done")),
                    )
                    .order_by(o.c.first_seen_at)
                )
            ]

    async def _one(
        self,
        origin_id: str,
        loaded: _Loaded | None,
        report: DownloadReport,
    ) -> None:
        """Fetch one origin's bytes; `loaded`: the origin and its source, read in bulk by
        `download` (None: read here, or skipped when there is no such origin)."""
        try:
            if loaded is None:
                loaded = await asyncio.to_thread(self._load, origin_id)
            origin, source = loaded
        except GallerySyncError as exc:
            report.skipped += 1
            report.errors.append(f"{origin_id}: {exc}")
            return
        already = origin.asset_hash is not None and self.blobs.exists(origin.asset_hash)
        if already and origin.fetch_status == "done":
            report.skipped += 1
            return
        connector = self._connector(source)
        async with self._limits[source.id]:
            fetched = await self._fetch_with_retries(connector, origin, report)
        if fetched is not None:
            # outside the source's slot: a download waiting for room in the group commit does
            # not hold one of the source's request slots (when the commit falls behind, a third
            # of each slot's time went to that wait, and an on-demand fetch waits for a slot)
            await self._queue(fetched, report)

    def _load_many(self, origin_ids: list[str]) -> dict[str, _Loaded]:
        """Origins and their sources in a few reads (not one read per download)."""
        with self.catalog.read() as conn:
            origins = get_remote_origins(conn, origin_ids)
            sources = {
                sid: get_source(conn, sid) for sid in {o.source_id for o in origins.values()}
            }
        return {oid: (origin, sources[origin.source_id]) for oid, origin in origins.items()}

    def _load(self, origin_id: str) -> tuple[RemoteOrigin, Source]:
        with self.catalog.read() as conn:
            origin = get_remote_origin(conn, origin_id)
            return origin, get_source(conn, origin.source_id)

    async def _fetch_with_retries(
        self, connector: RemoteSource, origin: RemoteOrigin, report: DownloadReport
    ) -> _Fetched | None:
        """The verified download, or None when there is nothing to queue (not modified, or
        given up with the reason recorded)."""
        attempt = 0
        while True:
            try:
                return await self._fetch_once(connector, origin, report)
            except _Retry as retry:
                attempt += 1
                if attempt >= self.attempts:
                    await self._give_up(origin, report, f"{retry.cause} (after {attempt} tries)")
                    return None
                after = getattr(retry.cause, "retry_after", None)
                delay = backoff_delay(
                    attempt, base=self.base_delay, cap=self.max_delay, retry_after=after
                )
                log.info("download %s: %s; retrying in %.1fs", origin.remote_id, retry, delay)
                await asyncio.sleep(delay)
            except RemoteRefusedError as exc:
                await self._give_up(origin, report, str(exc), gone=exc.http_status == 404)
                return None
            except (MalformedResponseError, MediaError) as exc:
                await self._give_up(origin, report, str(exc))
                return None

    async def _fetch_once(
        self, connector: RemoteSource, origin: RemoteOrigin, report: DownloadReport
    ) -> _Fetched | None:
        has_bytes = origin.asset_hash is not None and self.blobs.exists(origin.asset_hash)
        ref = ItemRef(origin.remote_id, origin.meta, origin.etag if has_bytes else None)
        expected = origin.meta.get("content_hash") if isinstance(origin.meta, dict) else None
        try:
            async with connector.open_bytes(ref) as stream:
                if stream.not_modified:
                    await asyncio.to_thread(self._write, mark_not_modified, origin.id)
                    report.not_modified += 1
                    return None
                writer, held = await self._open_writer(stream.size)
                try:
                    async for chunk in stream.chunks():
                        writer.write(chunk)
                    stored = writer.finish(expected_hash=str(expected) if expected else None)
                except BaseException:
                    self._drop(writer, held)
                    raise
                etag = stream.etag
        except (RemoteError, BlobIntegrityError) as exc:
            raise _Retry(exc) from exc
        try:
            media = await self._probe(writer, stored.size, origin.name)
        except BaseException:
            self._drop(writer, held)
            raise
        return _Fetched(writer, _Ready(origin, stored, media, etag), held)

    async def _queue(self, fetched: _Fetched, report: DownloadReport) -> None:
        """Hand a verified download to the group commit (waiting for room in it)."""
        held = fetched.held
        try:
            future = await self._commits.enqueue(fetched.ready, fetched.writer)
        except BaseException:
            self._drop(fetched.writer, held)
            raise
        future.add_done_callback(lambda _: self._release(held))
        # kept until the run settles, so without the meta (a ComfyUI meta is thousands of
        # objects, which every collection of the old generation would scan again)
        origin, size = fetched.ready.origin, fetched.ready.stored.size
        report.queued.append((dataclasses.replace(origin, meta={}), future, size))
        report.bytes += size

    async def _open_writer(self, size: int | None) -> tuple[BlobWriter, int]:
        """A writer for a body of this announced size, and the bytes of the memory budget it
        holds until `_release`: in memory when the body is small enough and the budget has
        room (0 held otherwise: a temp file, created off the event loop)."""
        if size is None or size > MAX_IN_MEMORY or self._in_memory + size > MEMORY_BUDGET:
            return await asyncio.to_thread(self.blobs.open_writer, expected_size=size), 0
        writer = self.blobs.open_writer(expected_size=size, in_memory=True)
        self._in_memory += size
        return writer, size

    def _release(self, held: int) -> None:
        self._in_memory -= held

    def _drop(self, writer: BlobWriter, held: int) -> None:
        """A download that will not be committed: its temp file or bytes, and its budget."""
        writer.abort()
        self._release(held)

    def _record_batch(self, batch: Sequence[_Ready]) -> list[str]:
        """Record a committed batch (its bytes are durable and renamed) in one transaction,
        with thumbnail jobs for images that have none; returns each item's asset id."""
        with self.catalog.write() as tx:
            asset_ids = record_downloads(
                tx,
                [
                    (
                        item.origin,
                        item.stored.hash,
                        item.stored.size,
                        {
                            "kind": item.media.kind,
                            "format": item.media.format,
                            "mime": item.media.mime,
                            "width": item.media.width,
                            "height": item.media.height,
                        },
                        item.etag,
                    )
                    for item in batch
                ],
            )
            images = sorted(
                {a for item, a in zip(batch, asset_ids, strict=True) if item.media.kind == "image"}
            )
            a = schema.assets
            todo = [
                r[0]
                for r in tx.conn.execute(
                    select(a.c.id).where(a.c.id.in_(images), a.c.thumb_hash.is_(None))
                )
            ]
            enqueue_many(tx, "thumbnail", thumbnail_jobs(sorted(todo)))
        return asset_ids

    async def _settle(self, report: DownloadReport) -> None:
        """Wait for this report's queued downloads to be committed, and count them."""
        queued, report.queued = report.queued, []
        for origin, future, size in queued:
            try:
                await future
            except Exception as exc:
                report.bytes -= size
                await self._give_up(origin, report, f"could not store the download: {exc}")
            else:
                report.downloaded += 1

    async def _probe(self, writer: BlobWriter, size: int, name: str) -> MediaInfo:
        """Identify the verified bytes: from memory, or from the temp file in a thread."""
        try:
            if writer.data is not None:
                return probe_bytes(writer.data, name)
            return await asyncio.to_thread(probe_file, str(writer.temp_path), size, name)
        except MediaError as exc:
            raise MediaError(
                f"{name}: the downloaded bytes are not a readable image ({exc})"
            ) from exc

    def _write(self, fn: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        with self.catalog.write() as tx:
            fn(tx, *args, **kwargs)

    async def _give_up(
        self, origin: RemoteOrigin, report: DownloadReport, reason: str, *, gone: bool = False
    ) -> None:
        log.warning("download of %s failed: %s", origin.remote_id, reason)
        await asyncio.to_thread(self._write, mark_fetch_failed, origin.id, reason, gone=gone)
        report.failed += 1
        report.failed_ids.append(origin.asset_id)
        report.errors.append(f"{origin.remote_id}: {reason}")


async def _drain(catalog: Catalog, blobs: BlobStore, source_id: str, concurrency: int) -> int:
    fetched = 0
    async with Downloader(catalog, blobs, concurrency=concurrency) as downloader:
        while True:
            with catalog.read() as conn:
                ids = pending_origin_ids(conn, source_ids=[source_id], limit=2000)
            if not ids:
                return fetched
            report = await downloader.download(ids)
            fetched += report.downloaded
            if report.downloaded + report.not_modified + report.failed == 0:
                return fetched  # nothing moved (all skipped): do not spin


def run_download_job(catalog: Catalog, blobs: BlobStore, source_id: str, concurrency: int) -> int:
    """The `download` job (one per source, run by `serve`'s workers in a thread): fetch every
    pending origin of the source, until none is left. Returns how many were downloaded."""
    return asyncio.run(_drain(catalog, blobs, source_id, concurrency))


def requeue_if_pending(catalog: Catalog, source_id: str) -> bool:
    """After a download job finished: origins queued while it ran (whose enqueue found the job
    still running) get a new job."""
    with catalog.read() as conn:
        left = pending_origin_ids(conn, source_ids=[source_id], limit=1)
    if not left:
        return False
    with catalog.write() as tx:
        enqueue_many(tx, "download", [({"source_id": source_id}, download_job_key(source_id))])
    return True
