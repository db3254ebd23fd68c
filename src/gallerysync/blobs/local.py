"""Local-disk blob store: `<root>/<2 hex>/<2 hex>/<64 hex>`, written atomically.

A write goes to `<root>/tmp/` while it is hashed, is checked against the announced hash and
size, fsynced, renamed into place and the directory fsynced. A crash leaves at most a temp file,
which `clean_temp()` removes at the next open; a partial file never carries a blob's name.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from gallerysync.blobs.base import StoredBlob
from gallerysync.blobs.hashing import hash_file, is_hash, new_hasher
from gallerysync.errors import BlobIntegrityError, InvalidInputError

__all__ = ["LocalBlobStore"]


class LocalBlobStore:
    """Content-addressed files under one root directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)

    def clean_temp(self) -> int:
        """Remove temp files left by killed writers. Returns how many were removed.

        A live writer holds an exclusive `flock` on its temp file, so only files whose writer
        is gone can be locked here and removed; another process's write in progress is safe.
        """
        removed = 0
        for entry in os.scandir(self.tmp):
            try:
                fd = os.open(entry.path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed += 1
            os.close(fd)
        return removed

    def _path(self, blob_hash: str) -> Path:
        if not is_hash(blob_hash):
            raise InvalidInputError(f"not a blob hash: {blob_hash!r}")
        return self.root / blob_hash[:2] / blob_hash[2:4] / blob_hash

    def put_stream(
        self,
        chunks: Iterable[bytes],
        *,
        expected_hash: str | None = None,
        expected_size: int | None = None,
    ) -> StoredBlob:
        hasher = new_hasher()
        size = 0
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp, prefix="put-")
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    hasher.update(chunk)
                    size += len(chunk)
                    if expected_size is not None and size > expected_size:
                        raise BlobIntegrityError(f"more bytes than the announced {expected_size}")
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            digest = str(hasher.hexdigest())
            if expected_size is not None and size != expected_size:
                raise BlobIntegrityError(f"got {size} bytes, announced {expected_size}")
            if expected_hash is not None and digest != expected_hash:
                raise BlobIntegrityError(f"content hash {digest} != announced {expected_hash}")
            final = self._path(digest)
            if final.exists():
                os.unlink(tmp_name)
                os.utime(final)  # fresh again: gc's grace period protects it anew
            else:
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp_name, final)
                _fsync_dir(final.parent)
            return StoredBlob((digest, size))
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise

    def put_bytes(self, data: bytes) -> StoredBlob:
        return self.put_stream([data])

    def exists(self, blob_hash: str) -> bool:
        return self._path(blob_hash).is_file()

    def open(self, blob_hash: str) -> BinaryIO:
        return open(self._path(blob_hash), "rb")

    def local_path(self, blob_hash: str) -> Path | None:
        path = self._path(blob_hash)
        return path if path.is_file() else None

    def size_of(self, blob_hash: str) -> int:
        return self._path(blob_hash).stat().st_size

    def mtime_of(self, blob_hash: str) -> float:
        """When the blob was last written (a rewrite of the same bytes refreshes it)."""
        return self._path(blob_hash).stat().st_mtime

    def delete(self, blob_hash: str) -> bool:
        try:
            os.unlink(self._path(blob_hash))
        except FileNotFoundError:
            return False
        return True

    def iter_hashes(self) -> Iterator[str]:
        """Every blob file under the root (temp files excluded)."""
        for first in sorted(os.scandir(self.root), key=lambda e: e.name):
            if first.name == "tmp" or not first.is_dir():
                continue
            for second in os.scandir(first.path):
                if not second.is_dir():
                    continue
                for entry in os.scandir(second.path):
                    if is_hash(entry.name):
                        yield entry.name

    def verify(self, blob_hash: str) -> bool:
        """Re-hash a stored blob; False when its bytes no longer match its name."""
        digest, _ = hash_file(self._path(blob_hash))
        return digest == blob_hash


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
