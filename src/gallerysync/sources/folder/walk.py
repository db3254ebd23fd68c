"""Walk a storage dir once, and examine (hash + probe) one file. Pure filesystem, no catalog.

The walk never follows symbolic links (no loops, no file counted twice through a link) and
records directories it cannot read instead of failing. `examine` reads each file exactly once:
the same bytes feed the BLAKE3 hasher, the header probe and the truncation check. A file whose
size, mtime or inode moved between the listing and the end of the read is reported `Unstable`
(it is still being written) and is not registered until a later pass sees it stable.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from blake3 import blake3

from gallerysync.sources.folder.media import MEDIA_EXTENSIONS, MediaError, MediaInfo, probe
from gallerysync.watch.names import IGNORED_PREFIXES, is_ignored_name

__all__ = [
    "Examined",
    "FileError",
    "Gone",
    "Listed",
    "Unstable",
    "WalkResult",
    "examine",
    "listed_from_stat",
    "root_state",
    "walk",
]

_READ_SIZE = 1 << 20
_TAIL_SIZE = 1 << 16
_HEAD_SIZE = 1 << 18
_INODE_MASK = (1 << 63) - 1  # inodes must fit a signed BIGINT on every database


class Listed(NamedTuple):
    """A file as listed: a tuple, because a walk makes one per file of a 100,000-file tree."""

    rel_path: str
    size: int
    mtime_ns: int
    inode: int


@dataclass
class WalkResult:
    files: list[Listed] = field(default_factory=list)  # new or changed since `known`
    unchanged: int = 0  # files whose (size, mtime_ns, inode) matched `known`
    vanished: set[str] = field(default_factory=set)  # known paths the walk did not find
    ignored: int = 0  # temp/hidden names and files that are not media
    symlinks: int = 0
    dir_errors: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Examined:
    listed: Listed
    hash: str
    media: MediaInfo


@dataclass(frozen=True, slots=True)
class FileError:
    listed: Listed
    error: str


@dataclass(frozen=True, slots=True)
class Gone:
    listed: Listed


@dataclass(frozen=True, slots=True)
class Unstable:
    listed: Listed
    reason: str


Outcome = Examined | FileError | Gone | Unstable


def root_state(root: Path) -> str | None:
    """None when the root looks mounted; otherwise why it is offline.

    A vanished root, a root that is not a directory, or an empty root (an unmounted mount point,
    a signed-out cloud folder) means offline: nothing under it may be marked missing.
    """
    try:
        with os.scandir(root) as entries:
            if next(entries, None) is None:
                return f"storage dir {root} is empty (unmounted or signed out?)"
    except FileNotFoundError:
        return f"storage dir {root} does not exist (unmounted or moved?)"
    except NotADirectoryError:
        return f"storage dir {root} is not a directory"
    except OSError as exc:
        return f"storage dir {root} cannot be read: {exc.strerror or exc}"
    return None


def listed_from_stat(rel_path: str, st: os.stat_result) -> Listed:
    """A `Listed` for a file stat'ed outside a walk (watcher, discovery, import)."""
    return Listed(rel_path, st.st_size, st.st_mtime_ns, st.st_ino & _INODE_MASK)


def walk(root: Path, known: dict[str, int | None] | None = None) -> WalkResult:
    """List every media file under `root` with `(size, mtime_ns, inode)`, in one pass.

    With `known` (path → `hash((size, mtime_ns, inode))` seen last time, or None to force a
    re-read), files whose stat still matches are only
    counted as unchanged — no object is made for them — and the known paths the walk did not
    meet are returned as `vanished`. `known` is consumed.

    The hot loop tests the extension first: every temporary/partial suffix in the ignore rules
    (`.tmp`, `.part`, `.crdownload` …) is not a media extension, so a media file only needs the
    prefix rules (hidden, `~$`) on top — the full `is_ignored_name` runs for directories only.
    """
    result = WalkResult()
    files = result.files
    media = MEDIA_EXTENSIONS
    remaining = known if known is not None else {}
    unchanged = 0
    stack: list[tuple[str, str]] = [(os.fspath(root), "")]
    while stack:
        directory, prefix = stack.pop()
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    name = entry.name
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            if is_ignored_name(name):
                                result.ignored += 1
                            else:
                                stack.append((entry.path, prefix + name + "/"))
                            continue
                        dot = name.rfind(".")
                        if (
                            dot <= 0
                            or name[dot + 1 :].lower() not in media
                            or name.startswith(IGNORED_PREFIXES)
                        ):
                            if entry.is_symlink():
                                result.symlinks += 1
                            else:
                                result.ignored += 1
                            continue
                        st = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:  # vanished while listing
                        continue
                    if not stat.S_ISREG(st.st_mode):
                        if stat.S_ISLNK(st.st_mode):
                            result.symlinks += 1
                        else:
                            result.ignored += 1
                        continue
                    rel = prefix + name
                    inode = st.st_ino & _INODE_MASK
                    if remaining.pop(rel, None) == hash((st.st_size, st.st_mtime_ns, inode)):
                        unchanged += 1
                        continue
                    if _has_surrogates(rel):
                        result.dir_errors.append(
                            (
                                rel.encode("utf-8", "surrogateescape").decode("utf-8", "replace"),
                                "file name is not valid UTF-8",
                            )
                        )
                        continue
                    files.append(Listed(rel, st.st_size, st.st_mtime_ns, inode))
        except FileNotFoundError:
            continue  # a directory removed while walking
        except OSError as exc:
            result.dir_errors.append((prefix.rstrip("/") or ".", exc.strerror or str(exc)))
    result.unchanged = unchanged
    result.vanished = set(remaining)
    return result


def _has_surrogates(text: str) -> bool:
    """Names that are not valid UTF-8 decode to lone surrogates; no database can store them."""
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def examine(root: Path, listed: Listed) -> Outcome:
    """Read a listed file once: hash it, probe its header and check it is complete."""
    path = os.path.join(root, listed.rel_path)
    try:
        # O_NONBLOCK: a FIFO given a media name must not hang the scan (no effect on files).
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return Gone(listed)
    except OSError as exc:
        return FileError(listed, f"cannot open: {exc.strerror or exc}")
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            return FileError(listed, "not a regular file")
        if (before.st_size, before.st_mtime_ns, before.st_ino & _INODE_MASK) != (
            listed.size,
            listed.mtime_ns,
            listed.inode,
        ):
            return Unstable(listed, "changed since it was listed")
        hasher = blake3()
        head = b""
        previous = b""
        chunk = b""
        total = 0
        size = before.st_size
        try:
            # Read exactly the listed size, in chunks of at most 1 MiB: asking for more than
            # is left would make the allocator map and unmap a 1 MiB buffer for every small
            # file. Growth after the listing shows up as a new size/mtime in the fstat below.
            while total < size:
                previous = chunk
                chunk = os.read(fd, min(size - total, _READ_SIZE))
                if not chunk:
                    chunk = previous
                    previous = b""
                    break
                if total == 0:
                    head = chunk[:_HEAD_SIZE]
                hasher.update(chunk)
                total += len(chunk)
        except OSError as exc:
            return FileError(listed, f"read failed: {exc.strerror or exc}")
        after = os.fstat(fd)
        if total != after.st_size or (after.st_size, after.st_mtime_ns) != (
            before.st_size,
            before.st_mtime_ns,
        ):
            return Unstable(listed, "changed while it was read")
        if len(chunk) >= _TAIL_SIZE or not previous:
            tail = chunk[-_TAIL_SIZE:]
        else:
            tail = previous[-(_TAIL_SIZE - len(chunk)) :] + chunk
        try:
            media = probe(os.path.basename(path), head, tail, total, path)
        except MediaError as exc:
            return FileError(listed, str(exc))
        return Examined(listed, str(hasher.hexdigest()), media)
    finally:
        os.close(fd)
