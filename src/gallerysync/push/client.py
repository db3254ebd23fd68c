"""The push client (DESIGN §5): a watched folder's images to a server, each exactly once.

At start-up the folder is scanned (files that arrived while the client was off are queued),
then watched with the same settle rule and ignore list as folder sources (`watch/`). Work is
driven from the persistent queue (`push/queue.py`), one pump at a time:

1. hash `queued` files once their size and mtime have been stable for the settle time;
2. ask the server which hashes it already has (`POST /api/assets/check`, ≤ 1,000 per call) —
   those are done without sending a byte;
3. upload the rest with bounded concurrency, streaming each file with its hash in a header
   and `Expect: 100-continue` (a server that has the bytes by then answers before any is sent).

Network errors, timeouts, 408, 429 (honouring `Retry-After`) and 5xx are retried with
exponential backoff and jitter, for as long as it takes; any other 4xx marks the file failed
with the server's message. A wrong-hash refusal (the file changed, or bytes were damaged on
the way) sends the file back to be hashed again, a few times at most.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import stat
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from gallerysync.blobs.hashing import hash_file
from gallerysync.errors import RemoteError, RemoteRefusedError
from gallerysync.events.wait import wait_any
from gallerysync.push.queue import FileState, PushQueue, QueuedFile, QueueStatus
from gallerysync.sources.folder.media import media_kind_for_name
from gallerysync.sources.folder.walk import root_state, walk
from gallerysync.sources.http import backoff_delay, status_error
from gallerysync.watch.names import is_ignored_name
from gallerysync.watch.watcher import SettleWatcher

__all__ = ["PushClient", "PushOptions", "queue_path_for"]

log = logging.getLogger(__name__)
CHECK_BATCH = 1000
HASH_BATCH = 256
MAX_REHASH = 5  # wrong-hash refusals before a file is failed
_READ = 1 << 20


def queue_path_for(home: Path, root: Path) -> Path:
    """Where the queue of `root` lives: one SQLite file per pushed folder, in the home."""
    key = hashlib.blake2b(os.fsencode(root.resolve()), digest_size=10).hexdigest()
    return home / "push" / f"{key}.sqlite3"


@dataclass(frozen=True)
class PushOptions:
    root: Path
    server: str  # base URL, no trailing slash
    token: str | None
    device: str
    concurrency: int
    settle_seconds: float
    retry_base_seconds: float
    mirror_deletes: bool = False

    @property
    def retry_cap_seconds(self) -> float:
        """Longest wait between attempts: an offline client still looks once a minute (or
        sooner, when the base is small, as in tests)."""
        return min(60.0, self.retry_base_seconds * 120)


class PushClient:
    """Pushes `options.root` to `options.server` until `stop` (or, `once`, until drained)."""

    def __init__(
        self,
        options: PushOptions,
        queue: PushQueue,
        *,
        on_progress: Callable[[QueueStatus, str], None] | None = None,
    ) -> None:
        self.options = options
        self.queue = queue
        self.on_progress = on_progress
        self._wake = asyncio.Event()
        self._uploads: dict[str, asyncio.Task[None]] = {}
        self._uploading_hashes: set[str] = set()
        self._hash_slots = asyncio.Semaphore(max(1, min(4, os.cpu_count() or 1)))
        self.last_problem = ""  # why work is waiting (offline…), for the progress display
        self._session: aiohttp.ClientSession | None = None

    # --- running -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, *, once: bool = False) -> QueueStatus:
        """Scan, then pump until `stop`; with `once`, return as soon as nothing is pending
        (only `done` and `failed` files left)."""
        opts = self.options
        if not opts.root.is_dir():
            raise FileNotFoundError(f"{opts.root} is not a directory")
        self.queue.bind(server=opts.server, dir=str(opts.root), device=opts.device)
        self.queue.recover()
        headers = {"Authorization": f"Bearer {opts.token}"} if opts.token else {}
        timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_connect=10, sock_read=120)
        connector = aiohttp.TCPConnector(limit=opts.concurrency + 2)
        watcher_task: asyncio.Task[None] | None = None
        async with aiohttp.ClientSession(
            headers=headers, timeout=timeout, connector=connector
        ) as session:
            self._session = session
            try:
                await self.scan()
                if not once:
                    watcher = SettleWatcher(
                        opts.root,
                        settle_seconds=opts.settle_seconds,
                        on_ready=self._on_ready,
                        on_root_back=self.scan,
                        name=f"push {opts.root}",
                    )
                    watcher_task = asyncio.create_task(watcher.run(stop), name="push-watch")
                while not stop.is_set():
                    await self._pump()
                    self._report()
                    if once and not self._uploads and self.queue.pending_count() == 0:
                        break
                    await self._idle(stop)
            finally:
                for task in self._uploads.values():
                    task.cancel()
                await asyncio.gather(*self._uploads.values(), return_exceptions=True)
                self._uploads.clear()
                self.queue.recover()  # interrupted uploads: re-checked at the next start
                if watcher_task is not None:
                    stop.set()
                    await watcher_task
                self._session = None
        status = self.queue.status()
        self._report(status)
        return status

    async def _idle(self, stop: asyncio.Event) -> None:
        """Wait for the next thing to do: a file settled, an upload ended, a retry is due."""
        due = self.queue.next_due_at()
        timeout = None if due is None else max(0.0, due - time.time())
        if timeout == 0.0:
            if not self._uploads:
                return  # due now: pump again
            timeout = None  # due work waits for an upload slot: the upload's end wakes us
        self._wake.clear()
        await wait_any(self._wake, stop, timeout=timeout)

    def _report(self, status: QueueStatus | None = None) -> None:
        if self.on_progress is not None:
            self.on_progress(status or self.queue.status(detail_limit=0), self.last_problem)

    # --- what is on disk -----------------------------------------------------------------

    async def scan(self) -> None:
        """Queue every image under the root that is new or changed since the queue saw it;
        forget (or, mirroring deletes, delete on the server) what is gone."""
        root = self.options.root
        result = await asyncio.to_thread(walk, root)
        listed = [(f.rel_path, f.size, f.mtime_ns) for f in result.files]
        queued = await asyncio.to_thread(self.queue.observe, listed)
        if root_state(root) is None:  # a lost mount is not 10,000 deletions
            gone = self.queue.known_paths() - {rel for rel, _, _ in listed}
            await asyncio.to_thread(
                self.queue.vanish, sorted(gone), mirror=self.options.mirror_deletes
            )
        log.info("push scan of %s: %d files, %d queued", root, len(listed), queued)
        self._wake.set()

    async def _on_ready(self, ready: list[str], _pending: set[str]) -> list[str]:
        seen: list[tuple[str, int, int]] = []
        gone: list[str] = []
        for rel in ready:
            name = rel.rsplit("/", 1)[-1]
            if media_kind_for_name(name) is None or any(is_ignored_name(p) for p in rel.split("/")):
                continue
            try:
                st = (self.options.root / rel).lstat()
            except FileNotFoundError:
                gone.append(rel)
                continue
            if stat.S_ISREG(st.st_mode):  # not a directory, not a symlink
                seen.append((rel, st.st_size, st.st_mtime_ns))
        await asyncio.to_thread(self.queue.observe, seen)
        if gone and root_state(self.options.root) is None:
            await asyncio.to_thread(self.queue.vanish, gone, mirror=self.options.mirror_deletes)
        self._wake.set()
        return []

    # --- the pump ------------------------------------------------------------------------

    async def _pump(self) -> None:
        await self._hash_due()
        await self._check_due()
        self._start_uploads()
        await self._delete_due()

    async def _hash_due(self) -> None:
        todo = self.queue.due(FileState.QUEUED, HASH_BATCH)
        if not todo:
            return
        settle_ns = int(self.options.settle_seconds * 1e9)
        now_ns = time.time_ns()
        young = [f for f in todo if now_ns - f.mtime_ns < settle_ns]
        settled = [f for f in todo if now_ns - f.mtime_ns >= settle_ns]
        if young:  # written moments ago: maybe still being written
            until = max(f.mtime_ns for f in young) / 1e9 + self.options.settle_seconds
            self.queue.defer([f.rel_path for f in young], until)
        await asyncio.gather(*(self._hash_one(f) for f in settled))

    async def _hash_one(self, f: QueuedFile) -> None:
        path = self.options.root / f.rel_path
        async with self._hash_slots:
            try:
                before = path.stat()
                digest, size = await asyncio.to_thread(hash_file, path)
                after = path.stat()
            except FileNotFoundError:
                await asyncio.to_thread(
                    self.queue.vanish, [f.rel_path], mirror=self.options.mirror_deletes
                )
                return
            except OSError as exc:
                self.queue.retry_later([f], f"cannot read: {exc.strerror or exc}", self._delay())
                return
        stat_now = (after.st_size, after.st_mtime_ns)
        if stat_now != (before.st_size, before.st_mtime_ns) or stat_now != (f.size, f.mtime_ns):
            self.queue.observe([(f.rel_path, *stat_now)])  # changed meanwhile: settle again
            return
        if size == f.size:
            self.queue.set_hashed(f, digest)

    async def _check_due(self) -> None:
        todo = self.queue.due(FileState.HASHED, CHECK_BATCH)
        if not todo:
            return
        items = [{"id": f.rel_path, "hash": f.hash, "size": f.size} for f in todo]
        try:
            answer = await self._request(
                "POST", "/api/assets/check", "check", json={"items": items}
            )
        except RemoteError as exc:
            self._offline(str(exc))
            self.queue.retry_later(todo, str(exc), self._delay(exc.retry_after))
            return
        except RemoteRefusedError as exc:
            for f in todo:
                self.queue.fail(f.rel_path, str(exc))
            return
        self.last_problem = ""
        results = {r.get("id"): r for r in answer.get("results", []) if isinstance(r, dict)}
        missing: list[str] = []
        for f in todo:
            result = results.get(f.rel_path)
            if result is not None and result.get("status") == "exists":
                self.queue.done(f.rel_path, asset_id=str(result.get("asset_id")), result="exists")
            else:
                missing.append(f.rel_path)
        self.queue.move(missing, FileState.CHECKED, expect=FileState.HASHED)

    def _start_uploads(self) -> None:
        free = self.options.concurrency - len(self._uploads)
        if free <= 0:
            return
        for f in self.queue.due(FileState.CHECKED, free + len(self._uploading_hashes) + 8):
            if free <= 0:
                break
            if f.rel_path in self._uploads or f.hash in self._uploading_hashes:
                continue  # the same bytes are on the way from another path: wait for them
            assert f.hash is not None
            twin = self.queue.done_with_hash(f.hash)
            if twin is not None and twin.asset_id:
                self.queue.done(f.rel_path, asset_id=twin.asset_id, result="duplicate")
                continue
            if self.queue.move([f.rel_path], FileState.UPLOADING, expect=FileState.CHECKED) != 1:
                continue
            self._uploading_hashes.add(f.hash)
            task = asyncio.create_task(self._upload(f), name=f"upload:{f.rel_path}")
            self._uploads[f.rel_path] = task
            free -= 1

    async def _upload(self, f: QueuedFile) -> None:
        assert f.hash is not None
        sent = 0
        try:
            try:
                handle = open(self.options.root / f.rel_path, "rb")  # noqa: SIM115 - closed below
            except FileNotFoundError:
                await asyncio.to_thread(
                    self.queue.vanish, [f.rel_path], mirror=self.options.mirror_deletes
                )
                return

            async def body() -> AsyncIterator[bytes]:
                nonlocal sent
                remaining = f.size
                while remaining > 0:
                    chunk = await asyncio.to_thread(handle.read, min(_READ, remaining))
                    if not chunk:
                        return  # shorter than hashed: the server refuses, we hash again
                    remaining -= len(chunk)
                    sent += len(chunk)
                    yield chunk

            headers = {
                "X-Content-Hash": f.hash,
                "X-Relative-Path": urllib.parse.quote(f.rel_path, safe="/"),
                "X-Device": self.options.device,
                "X-File-Mtime": str(f.mtime_ns // 1_000_000),
                "Content-Length": str(f.size),
                "Content-Type": "application/octet-stream",
            }
            try:
                answer = await self._request(
                    "POST", "/api/assets", "upload", data=body(), headers=headers, expect100=True
                )
            finally:
                handle.close()
            self.last_problem = ""
            self.queue.done(
                f.rel_path,
                asset_id=str(answer["asset_id"]),
                result=answer["status"],
                bytes_sent=sent,
            )
        except RemoteError as exc:
            self._offline(str(exc))
            self.queue.add_bytes_sent(f.rel_path, sent)
            self.queue.retry_later(
                [f], str(exc), self._delay(exc.retry_after), state=FileState.CHECKED
            )
        except RemoteRefusedError as exc:
            self.queue.add_bytes_sent(f.rel_path, sent)
            damaged = exc.remote_code in ("blob_integrity", "incomplete_upload")
            if damaged and f.attempts + 1 < MAX_REHASH:
                # The bytes that arrived are not the ones hashed: hash the file again.
                self.queue.retry_later([f], str(exc), self._delay(), state=FileState.QUEUED)
            else:
                self.queue.fail(f.rel_path, str(exc))
        finally:
            self._uploads.pop(f.rel_path, None)
            self._uploading_hashes.discard(f.hash)
            self._wake.set()

    async def _delete_due(self) -> None:
        """--mirror-deletes: move the server's copy of a deleted local file to its trash."""
        for f in self.queue.due(FileState.DELETING, 100):
            try:
                await self._request("DELETE", f"/api/assets/{f.asset_id}", "delete")
            except RemoteError as exc:
                self._offline(str(exc))
                self.queue.retry_later([f], str(exc), self._delay(exc.retry_after))
                continue
            except RemoteRefusedError as exc:
                if exc.http_status != 404:  # already gone is what we wanted
                    self.queue.fail(f.rel_path, str(exc))
                    continue
            self.queue.forget(f.rel_path)

    # --- HTTP ----------------------------------------------------------------------------

    async def _request(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        assert self._session is not None
        url = self.options.server + path
        try:
            async with self._session.request(method, url, **kwargs) as response:
                body = await response.read()
                if response.status >= 300:
                    raise status_error(response, body, what)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            detail = str(exc) or type(exc).__name__
            raise RemoteError(f"{what}: server unreachable ({detail})") from exc
        try:
            return orjson.loads(body) if body else {}
        except orjson.JSONDecodeError as exc:
            raise RemoteError(f"{what}: the server's reply is not JSON") from exc

    def _delay(self, retry_after: float | None = None) -> Callable[[int], float]:
        opts = self.options

        def delay(attempts: int) -> float:
            return backoff_delay(
                min(attempts, 30),
                base=opts.retry_base_seconds,
                cap=opts.retry_cap_seconds,
                retry_after=retry_after,
            )

        return delay

    def _offline(self, reason: str) -> None:
        if reason != self.last_problem:
            log.warning("push: %s (retrying)", reason)
        self.last_problem = reason
