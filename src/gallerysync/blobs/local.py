"""Local-disk blob store: `<root>/<2 hex>/<64 hex>`, written atomically.

One level of 256 directories, as git's object store: a fresh store makes at most 256 of them.
The earlier `<2 hex>/<2 hex>/<64 hex>` layout made a new leaf directory for nearly every one of
the first tens of thousands of blobs, and on ext4 each such `mkdir` cost as much system time
as writing a 200 KB file (measured: 2,000 blobs, 1.1 s of `mkdir` beside 1.2 s of writes).
A store in that layout is moved into this one when it is opened (`_settle_layout`).

A write goes to `<root>/tmp/` while it is hashed, is checked against the announced hash and
size, fsynced, renamed into place and the directory fsynced. A crash leaves at most a temp file,
which `clean_temp()` removes at the next open; a partial file never carries a blob's name.

Bytes held in memory until a group commit writes them go, on Linux, to an *unnamed* temp file
(`O_TMPFILE` in `<root>/tmp/`) that `linkat` gives its blob name once the batch is flushed: two
system calls per blob while it is staged, no temp name, nothing left behind by a crash. Where the
file system or kernel cannot do that (probed once per store), they go to a named temp file in
`<root>/tmp/<first hex digit of their hash>/` instead.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import secrets
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from gallerysync.blobs.base import StoredBlob
from gallerysync.blobs.hashing import hash_file, is_hash, new_hasher
from gallerysync.errors import BlobIntegrityError, InvalidInputError

__all__ = ["BlobWriter", "LocalBlobStore"]


class LocalBlobStore:
    """Content-addressed files under one root directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self._dirs: set[Path] = set()  # blob directories known to exist (no mkdir per blob)
        self.unnamed_temp = _can_link_unnamed(self.tmp)
        self.migrated = self._settle_layout()

    def _settle_layout(self) -> int:
        """Make sure the store is in this layout (`LAYOUT`, recorded in `<root>/layout`): a store
        written by an earlier version, in `<2 hex>/<2 hex>/<hash>`, has its blobs renamed one
        level up (cheap renames on one file system), flushed, then the marker written. Under an
        exclusive lock on the root, so two processes opening one store do not both move; a
        migration cut short is finished by the next open. Returns how many blobs were moved."""
        marker = self.root / "layout"
        if _read_text(marker) == LAYOUT:
            return 0
        fd = os.open(self.root, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if _read_text(marker) == LAYOUT:  # another process migrated while we waited
                return 0
            moved = _move_up_two_level(self.root)
            if moved:
                self.sync()  # the renames are durable before the marker says they happened
            temp = self.root / ".layout.new"
            temp.write_text(LAYOUT)
            os.replace(temp, marker)
            _fsync_dir(self.root)
            return moved
        finally:
            os.close(fd)  # releases the lock

    def write_unnamed(self, data: bytes) -> int | None:
        """`data` in an unnamed temp file (`O_TMPFILE`); its descriptor, for `link_unnamed`.
        None where unnamed files are not available (the caller writes a named temp file)."""
        if not self.unnamed_temp:
            return None
        fd = os.open(self.tmp, os.O_TMPFILE | os.O_WRONLY, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except BaseException:
            os.close(fd)
            raise
        return fd

    def link_unnamed(self, fd: int, blob_hash: str) -> bool:
        """Give the unnamed file `fd` its blob name; False when the blob already exists (a
        concurrent writer of the same bytes won: the unnamed file is dropped at `close`)."""
        try:
            self._into_place(self._path(blob_hash), lambda final: _link_fd(fd, final))
        except FileExistsError:
            return False
        return True

    def clean_temp(self) -> int:
        """Remove temp files left by killed writers. Returns how many were removed.

        A live writer holds an exclusive `flock` on its temp file, so only files whose writer
        is gone can be locked here and removed; another process's write in progress is safe.
        """
        removed = 0
        for path in self.temp_files():
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
                removed += 1
            os.close(fd)
        return removed

    def temp_files(self) -> list[Path]:
        """Temp files present now: in `tmp/`, and in its shards `tmp/<hex>/` (in-memory blobs
        are staged there by the first hex digit of their hash, so that writers in several
        threads create files in different directories, which ext4 does in parallel)."""
        found: list[Path] = []
        for entry in os.scandir(self.tmp):
            if entry.is_dir(follow_symlinks=False):
                found.extend(Path(sub.path) for sub in os.scandir(entry.path) if sub.is_file())
            elif entry.is_file(follow_symlinks=False):
                found.append(Path(entry.path))
        return found

    def _temp_dir(self, blob_hash: str | None) -> Path:
        if blob_hash is None:
            return self.tmp
        shard = self.tmp / blob_hash[0]
        self._ensure_dir(shard)
        return shard

    def _path(self, blob_hash: str) -> Path:
        if not is_hash(blob_hash):
            raise InvalidInputError(f"not a blob hash: {blob_hash!r}")
        return self.root / blob_hash[:2] / blob_hash

    def put_stream(
        self,
        chunks: Iterable[bytes],
        *,
        expected_hash: str | None = None,
        expected_size: int | None = None,
    ) -> StoredBlob:
        writer = self.open_writer(expected_size=expected_size)
        try:
            for chunk in chunks:
                writer.write(chunk)
            return writer.commit(expected_hash=expected_hash)
        finally:
            writer.abort()

    def open_writer(
        self, *, expected_size: int | None = None, in_memory: bool = False
    ) -> BlobWriter:
        """An incremental write, for bytes that arrive from the network: `write` chunks as they
        come (hashed on the way), then `commit` (verify, fsync, rename) or `abort`.

        `in_memory` (needs `expected_size`): keep the bytes in memory until `stage`, so the
        caller's thread (an event loop) never waits on the file system; for bodies of a known,
        bounded size whose disk work a group commit does in its own thread."""
        return BlobWriter(self, expected_size, in_memory=in_memory)

    def _ensure_dir(self, path: Path) -> None:
        """mkdir -p, once per directory per store (several threads may race: harmless)."""
        if path not in self._dirs:
            path.mkdir(parents=True, exist_ok=True)
            self._dirs.add(path)

    def _place(self, temp: str, final: Path) -> None:
        """Rename a temp file to its blob path, creating the blob's directories once."""
        self._into_place(final, lambda path: os.replace(temp, path))

    def _into_place(self, final: Path, put: Callable[[Path], None]) -> None:
        """`put(final)` (a rename or a link), with the blob's directories created once."""
        self._ensure_dir(final.parent)
        try:
            put(final)
        except FileNotFoundError:  # the directory went away (removed by hand): make it again
            final.parent.mkdir(parents=True, exist_ok=True)
            put(final)

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
            if not _is_hex2(first.name) or not first.is_dir():
                continue
            for entry in os.scandir(first.path):
                if is_hash(entry.name) and entry.name.startswith(first.name):
                    yield entry.name

    def sync(self) -> None:
        """Flush everything written under the root to stable storage: one `syncfs(2)` of its
        file system (Linux; elsewhere `sync(2)`) for a batch of downloads."""
        fd = os.open(self.root, os.O_RDONLY)
        try:
            if _SYNCFS is None or _SYNCFS(fd) != 0:
                os.sync()
        finally:
            os.close(fd)

    def verify(self, blob_hash: str) -> bool:
        """Re-hash a stored blob; False when its bytes no longer match its name."""
        digest, _ = hash_file(self._path(blob_hash))
        return digest == blob_hash


LAYOUT = "<2 hex>/<64 hex>\n"  # the marker's text: how blobs are laid out under the root
_HEX2 = frozenset(f"{n:02x}" for n in range(256))


def _is_hex2(name: str) -> bool:
    return name in _HEX2


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def _move_up_two_level(root: Path) -> int:
    """Rename every blob of the old `<2 hex>/<2 hex>/<hash>` layout to `<2 hex>/<hash>` and
    remove the emptied leaf directories; anything else is left where it is. Idempotent."""
    moved = 0
    for first in os.scandir(root):
        if not _is_hex2(first.name) or not first.is_dir(follow_symlinks=False):
            continue
        for second in os.scandir(first.path):
            if not _is_hex2(second.name) or not second.is_dir(follow_symlinks=False):
                continue
            for entry in os.scandir(second.path):
                if is_hash(entry.name) and entry.name[:4] == first.name + second.name:
                    os.replace(entry.path, os.path.join(first.path, entry.name))
                    moved += 1
            with contextlib.suppress(OSError):  # not empty: something else lives there
                os.rmdir(second.path)
    return moved


def _libc_function(name: str) -> Any:
    """A libc function through ctypes (it releases the GIL while it runs), or None where there
    is none (not Linux, or no such call)."""
    try:
        return getattr(ctypes.CDLL(None, use_errno=True), name, None)
    except OSError:
        return None


_SYNCFS: Callable[[int], int] | None = _libc_function("syncfs")

_AT_FDCWD = -100
_AT_SYMLINK_FOLLOW = 0x400


_LINKAT: Callable[[int, bytes, int, bytes, int], int] | None = _libc_function("linkat")


def _link_fd(fd: int, path: Path) -> None:
    """`linkat` an open (unnamed) file to `path` through `/proc/self/fd`, which needs no
    privilege (`AT_EMPTY_PATH` would need CAP_DAC_READ_SEARCH). `os.link` cannot do it: it
    calls `link(2)`, which does not follow the `/proc` link."""
    assert _LINKAT is not None
    source = f"/proc/self/fd/{fd}".encode()
    if _LINKAT(_AT_FDCWD, source, _AT_FDCWD, os.fsencode(path), _AT_SYMLINK_FOLLOW) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(path))


def _can_link_unnamed(directory: Path) -> bool:
    """Whether unnamed temp files can be created in `directory` and linked to a name: needs
    Linux, a file system with `O_TMPFILE` and a mounted `/proc`. Tried once, for real."""
    if _LINKAT is None or not hasattr(os, "O_TMPFILE"):
        return False
    try:
        fd = os.open(directory, os.O_TMPFILE | os.O_WRONLY, 0o600)
    except OSError:
        return False
    probe = directory / f"probe-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        _link_fd(fd, probe)
        linked = probe.is_file() and not probe.is_symlink()
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.EXDEV, errno.EPERM, errno.EACCES, errno.ENOTSUP):
            raise
        linked = False
    finally:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(probe)
    return linked


class BlobWriter:
    """One blob being written: a locked temp file in `<root>/tmp/`, hashed as it grows — or,
    `in_memory`, the bytes in memory until `stage` writes that temp file."""

    def __init__(
        self, store: LocalBlobStore, expected_size: int | None, *, in_memory: bool = False
    ) -> None:
        if in_memory and expected_size is None:
            raise ValueError("an in-memory blob needs its expected size (memory is bounded)")
        self.store = store
        self.expected_size = expected_size
        self.size = 0
        self._hasher = new_hasher()
        self._digest = ""
        self._tmp_name = ""
        self._unnamed: int | None = None  # the descriptor of the staged unnamed temp file
        self._out: BinaryIO | None = None
        self._chunks: list[bytes] | None = [] if in_memory else None
        self._data: bytes | None = None  # the in-memory bytes, joined by `finish`
        self._open = True
        if not in_memory:
            self._create_temp()

    def _create_temp(self) -> None:
        shard = self.store._temp_dir(self._digest or None)
        fd, self._tmp_name = tempfile.mkstemp(dir=shard, prefix="put-")
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._out = os.fdopen(fd, "wb")

    @property
    def data(self) -> bytes | None:
        """An in-memory blob's bytes after `finish` (None for a file-backed one)."""
        return self._data

    def write(self, chunk: bytes) -> None:
        assert self._open, "write after commit/abort"
        self.size += len(chunk)
        if self.expected_size is not None and self.size > self.expected_size:
            raise BlobIntegrityError(f"more bytes than the announced {self.expected_size}")
        self._hasher.update(chunk)
        if self._chunks is not None:
            self._chunks.append(chunk)
        else:
            assert self._out is not None
            self._out.write(chunk)

    def commit(self, *, expected_hash: str | None = None) -> StoredBlob:
        """Verify against the announced size and hash, then make the bytes a blob. On a
        mismatch nothing is stored (the temp file is removed) and `BlobIntegrityError` says
        what differed."""
        assert self._open, "commit after commit/abort"
        if self._chunks is not None:
            self._write_memory(b"".join(self._chunks))
            self._chunks = None
        out = self._out
        assert out is not None
        try:
            out.flush()
            os.fsync(out.fileno())
            out.close()
            self._out = None
            self._open = False
            digest = str(self._hasher.hexdigest())
            if self.expected_size is not None and self.size != self.expected_size:
                raise BlobIntegrityError(f"got {self.size} bytes, announced {self.expected_size}")
            if expected_hash is not None and digest != expected_hash:
                raise BlobIntegrityError(f"content hash {digest} != announced {expected_hash}")
            final = self.store._path(digest)
            if final.exists():
                os.unlink(self._tmp_name)
                os.utime(final)  # fresh again: gc's grace period protects it anew
            else:
                self.store._place(self._tmp_name, final)
                _fsync_dir(final.parent)
            self._tmp_name = ""
            return StoredBlob((digest, self.size))
        except BaseException:
            self.abort()
            raise

    @property
    def temp_path(self) -> Path:
        assert self._tmp_name, "an in-memory blob has no temp file before `stage`"
        return Path(self._tmp_name)

    def _write_memory(self, data: bytes) -> None:
        self._create_temp()
        assert self._out is not None
        self._out.write(data)
        self._out.flush()

    def finish(self, *, expected_hash: str | None = None) -> StoredBlob:
        """Verify like `commit`, but leave the bytes in the (still locked) temp file: the
        caller makes a whole batch durable with one `LocalBlobStore.sync()` and then
        `publish`es each — one flush of the file system instead of an fsync per file."""
        assert self._open, "finish after commit/abort"
        try:
            if self._chunks is not None:
                self._data = b"".join(self._chunks)
                self._chunks = None
            elif self._out is not None:
                self._out.flush()
            digest = str(self._hasher.hexdigest())
            if self.expected_size is not None and self.size != self.expected_size:
                raise BlobIntegrityError(f"got {self.size} bytes, announced {self.expected_size}")
            if expected_hash is not None and digest != expected_hash:
                raise BlobIntegrityError(f"content hash {digest} != announced {expected_hash}")
        except BaseException:
            self.abort()
            raise
        self._digest = digest
        return StoredBlob((digest, self.size))

    def stage(self) -> None:
        """After `finish`, in a staging thread: write an in-memory blob's bytes to an unnamed
        temp file (else a locked named one). A no-op for a file-backed writer, whose bytes are
        already there. Bytes the store holds already are written too (`publish` then drops
        them): checking first would cost a system call for every blob, to save one write for
        the rare duplicate."""
        assert self._open and self._digest, "stage without finish"
        if self._data is None or self._tmp_name or self._unnamed is not None:
            return
        self._unnamed = self.store.write_unnamed(self._data)
        if self._unnamed is None:
            self._write_memory(self._data)

    def publish(self) -> StoredBlob:
        """After `finish`, `stage` and a `LocalBlobStore.sync()`: give the bytes their hash as a
        name (link the unnamed file, or rename the named one). The name itself is made durable
        by the next `sync()`, before anything references it."""
        assert self._open and self._digest, "publish without finish"
        if self._unnamed is not None:
            if not self.store.link_unnamed(self._unnamed, self._digest):
                os.utime(self.store._path(self._digest))
            self._close()
            return StoredBlob((self._digest, self.size))
        final = self.store._path(self._digest)
        if final.exists():
            if self._tmp_name:
                os.unlink(self._tmp_name)
            os.utime(final)
        else:
            assert self._tmp_name, "publish before stage"
            self.store._place(self._tmp_name, final)
        self._tmp_name = ""
        self._close()  # releases the flock: the file has its final name now
        return StoredBlob((self._digest, self.size))

    def _close(self) -> None:
        self._open = False
        self._chunks = self._data = None
        if self._unnamed is not None:
            os.close(self._unnamed)  # an unnamed file not linked yet is freed by the kernel
            self._unnamed = None
        if self._out is not None:
            self._out.close()
            self._out = None

    def abort(self) -> None:
        """Drop the temp file and any bytes held (a no-op after a successful commit)."""
        self._close()
        if self._tmp_name:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._tmp_name)
            self._tmp_name = ""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
