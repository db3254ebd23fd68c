"""Receive pushed files (the server half of push, DESIGN §5).

An upload streams into a locked temp file of the blob store and is hashed as it arrives (the
write of one megabyte overlapping the arrival of the next); only when every announced byte is
there and the BLAKE3 hash matches the one the client announced is it probed, then made
durable, renamed to its hash and recorded through the group commit that downloads use — so a
truncated, corrupted or unreadable upload stores nothing, and uploads that finish together
share one flush and one transaction. Relative paths and device names come from the client: they
are checked and kept as origin metadata only, never used to build a path on this machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import unicodedata
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from gallerysync.blobs.hashing import is_hash
from gallerysync.blobs.local import BlobWriter, LocalBlobStore
from gallerysync.catalog import Catalog, WriteTx
from gallerysync.catalog.jobs import enqueue_many
from gallerysync.catalog.uploads import HashState, UploadResult, hash_states, record_upload
from gallerysync.errors import (
    BlobIntegrityError,
    IncompleteUploadError,
    InvalidInputError,
    UnsafePathError,
    UnsupportedMediaError,
)
from gallerysync.sources.folder.media import MediaError, media_kind_for_name, probe_file
from gallerysync.sync.group_commit import GroupCommit
from gallerysync.sync.register import thumbnail_jobs

__all__ = [
    "MAX_PATH_LENGTH",
    "Upload",
    "UploadReceiver",
    "check_device",
    "check_rel_path",
]

MAX_PATH_LENGTH = 1024
_WRITE_BUFFER = 1 << 20  # bytes gathered before one write (and hash) in a worker thread
_DEVICE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_rel_path(text: str) -> str:
    """A client's relative path, normalised to NFC with `/` separators; refuses absolute
    paths, `..`, empty or hidden parts, control characters and backslashes (a Windows
    separator that would mean something else on another machine)."""
    path = unicodedata.normalize("NFC", text)
    if not path or len(path) > MAX_PATH_LENGTH:
        raise UnsafePathError(f"relative path must be 1–{MAX_PATH_LENGTH} characters")
    if any(ord(c) < 32 or c in "\\\x7f" for c in path):
        raise UnsafePathError("relative path contains a control character or a backslash")
    parts = path.split("/")
    if path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise UnsafePathError(f"not a safe relative path: {text!r}")
    if media_kind_for_name(parts[-1]) is None:
        raise UnsupportedMediaError(f"{parts[-1]!r} is not an image or video file name")
    return path


def check_device(text: str) -> str:
    if not _DEVICE.match(text):
        raise InvalidInputError("device name must be 1–64 of A-Z a-z 0-9 . _ - (first: A-Z 0-9)")
    return text


@dataclass(frozen=True)
class Upload:
    """One upload as the client announced it (headers already validated)."""

    owner_id: str
    device: str
    rel_path: str
    hash: str
    size: int
    mtime_ms: int | None

    def __post_init__(self) -> None:
        if not is_hash(self.hash):
            raise InvalidInputError("the content hash must be 64 lowercase hex digits (BLAKE3)")


class UploadReceiver:
    """Stores uploads into the blob store and records them in the catalog."""

    def __init__(self, catalog: Catalog, blobs: LocalBlobStore) -> None:
        self.catalog = catalog
        self.blobs = blobs
        self._group: GroupCommit[tuple[Upload, dict[str, object]], UploadResult] | None = None
        self._group_loop: asyncio.AbstractEventLoop | None = None

    def states(self, owner_id: str, hashes: list[str]) -> dict[str, HashState]:
        """The owner's assets among `hashes` whose bytes this server can serve: present
        somewhere, or in the blob store (an asset whose only file vanished is `missing`)."""
        with self.catalog.read() as conn:
            found = hash_states(conn, owner_id, hashes)
        return {h: s for h, s in found.items() if s.present or self.blobs.exists(h)}

    def record_duplicate(self, upload: Upload) -> UploadResult | None:
        """When the owner already has these bytes, record the origin and skip the body; None
        when the bytes must be sent."""
        if upload.hash not in self.states(upload.owner_id, [upload.hash]):
            return None
        return self._record(upload, None)

    async def receive(self, upload: Upload, chunks: AsyncIterator[bytes]) -> UploadResult:
        """Stream `chunks` into the blob store, verify, probe and record them."""
        writer = self.blobs.open_writer(expected_size=upload.size)
        try:
            await _write_all(writer, chunks)
            if writer.size != upload.size:
                raise IncompleteUploadError(
                    f"the upload ended after {writer.size} of {upload.size} bytes"
                )
            try:
                await asyncio.to_thread(writer.finish, expected_hash=upload.hash)
            except BlobIntegrityError as exc:
                raise BlobIntegrityError(
                    f"the bytes do not match the announced hash; nothing was stored ({exc})"
                ) from exc
            name = upload.rel_path.rsplit("/", 1)[-1]
            temp = str(writer.temp_path)
            try:
                info = await asyncio.to_thread(probe_file, temp, upload.size, name)
            except MediaError as exc:
                reason = f"{name}: not a readable image or video ({exc})"
                raise UnsupportedMediaError(reason) from exc
        except BaseException:
            writer.abort()
            raise
        media: dict[str, object] = {
            "kind": info.kind,
            "format": info.format,
            "mime": info.mime,
            "width": info.width,
            "height": info.height,
        }
        try:
            committed = await self._commits().enqueue((upload, media), writer)
        except BaseException:
            writer.abort()
            raise
        return await committed

    def _commits(self) -> GroupCommit[tuple[Upload, dict[str, object]], UploadResult]:
        """The group commit of this event loop (uploads finishing together share a flush)."""
        loop = asyncio.get_running_loop()
        if self._group is None or self._group_loop is not loop:
            self._group = GroupCommit(self.blobs, self._record_batch)
            self._group_loop = loop
        return self._group

    def _record_batch(
        self, batch: Sequence[tuple[Upload, dict[str, object]]]
    ) -> list[UploadResult]:
        with self.catalog.write() as tx:
            return [self._record_in(tx, upload, media) for upload, media in batch]

    def _record(self, upload: Upload, media: dict[str, object] | None) -> UploadResult:
        with self.catalog.write() as tx:
            return self._record_in(tx, upload, media)

    @staticmethod
    def _record_in(tx: WriteTx, upload: Upload, media: dict[str, object] | None) -> UploadResult:
        result = record_upload(
            tx,
            owner_id=upload.owner_id,
            device=upload.device,
            rel_path=upload.rel_path,
            blob_hash=upload.hash,
            size=upload.size,
            media=media,
            mtime_ms=upload.mtime_ms,
        )
        if result.created and media is not None and media.get("kind") == "image":
            enqueue_many(tx, "thumbnail", thumbnail_jobs([result.asset_id]))
        return result


async def _write_all(writer: BlobWriter, chunks: AsyncIterator[bytes]) -> None:
    """Write (and hash) arriving chunks in a worker thread, ~1 MiB at a time, while the next
    ones keep arriving: at most one write is in flight, so the file stays in order."""
    buffer = bytearray()
    writing: asyncio.Future[None] | None = None
    try:
        async for chunk in chunks:
            buffer += chunk
            if len(buffer) >= _WRITE_BUFFER:
                if writing is not None:
                    await writing
                writing = asyncio.ensure_future(asyncio.to_thread(writer.write, bytes(buffer)))
                buffer.clear()
        if writing is not None:
            await writing
            writing = None
        if buffer:
            await asyncio.to_thread(writer.write, bytes(buffer))
    finally:
        if writing is not None:  # failed mid-way: let the write end before the file goes
            with contextlib.suppress(BaseException):
                await writing
