"""Group commit of verified blobs: downloads and uploads share one flush per batch.

A verified blob waits in its locked temp file (`BlobWriter.finish`). Whatever is ready while a
batch commits forms the next batch, which costs two file-system flushes and one catalog
transaction however many files it holds: flush the temp files, rename them to their hashes,
flush again (the renames), and only then record them — so the catalog never references bytes a
crash could lose. With one file in flight it degrades to one flush pair per file.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from gallerysync.blobs.local import BlobWriter, LocalBlobStore

__all__ = ["GroupCommit"]

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Pending(Generic[T, R]):
    item: T
    writer: BlobWriter
    future: asyncio.Future[R]


class GroupCommit(Generic[T, R]):
    """`enqueue(item, writer)` → a future of `record([...])`'s result for that item.

    `record(items)` runs in a worker thread after the batch's bytes are durable and renamed;
    it must record every item in one transaction and return one result per item, in order.
    At most `limit` items wait uncommitted (their temp files are open meanwhile). Create and
    use it on one event loop.
    """

    def __init__(
        self,
        blobs: LocalBlobStore,
        record: Callable[[Sequence[T]], list[R]],
        *,
        limit: int = 256,
    ) -> None:
        self.blobs = blobs
        self._record = record
        self._room = asyncio.Semaphore(limit)
        self._ready: list[_Pending[T, R]] = []
        self._task: asyncio.Task[None] | None = None

    async def enqueue(self, item: T, writer: BlobWriter) -> asyncio.Future[R]:
        """Hand over a `finish`ed writer; it is durable and recorded when the future resolves
        (on failure the temp file is dropped and the future carries the error)."""
        await self._room.acquire()
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._ready.append(_Pending(item, writer, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop(), name="group-commit")
        return future

    async def drain(self) -> None:
        """Wait until everything enqueued so far is committed (or failed)."""
        while self._task is not None and not self._task.done():
            await self._task

    async def _loop(self) -> None:
        while self._ready:
            batch, self._ready = self._ready, []
            try:
                results = await asyncio.to_thread(self._commit, batch)
            except Exception as exc:
                for pending in batch:
                    pending.writer.abort()
                    if not pending.future.done():
                        pending.future.set_exception(exc)
            else:
                for pending, result in zip(batch, results, strict=True):
                    if not pending.future.done():
                        pending.future.set_result(result)
            finally:
                for _ in batch:
                    self._room.release()

    def _commit(self, batch: list[_Pending[T, R]]) -> list[R]:
        self.blobs.sync()
        for pending in batch:
            pending.writer.publish()
        self.blobs.sync()
        return self._record([pending.item for pending in batch])
