"""The push client's persistent queue: one SQLite file per pushed folder.

Every file moves through `queued → hashed → checked → uploading → done | failed`, and every
transition is committed before the work it enables starts. A SIGKILL at any moment therefore
loses nothing (a file is in some state on disk) and repeats nothing that completed: an
`uploading` row found at start-up goes back to `hashed`, and the check that follows finds the
upload on the server if it landed. WAL with `synchronous=NORMAL` is durable against a killed
process (what this guards against); a power loss may roll back the last transitions, which
the same re-check then repeats harmlessly.
"""

from __future__ import annotations

import enum
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["FileState", "PushQueue", "QueueStatus", "QueuedFile"]


class FileState(enum.StrEnum):
    QUEUED = "queued"  # seen on disk; to hash once it has settled
    HASHED = "hashed"  # hash known; to ask the server whether it has it
    CHECKED = "checked"  # the server lacks it; to upload
    UPLOADING = "uploading"  # bytes on the way
    DONE = "done"  # the server has it (`result`: created | duplicate | exists)
    FAILED = "failed"  # refused for good (`last_error` says why); retried if the file changes
    DELETING = "deleting"  # --mirror-deletes: the local file went, the server's copy goes next


PENDING = (FileState.QUEUED, FileState.HASHED, FileState.CHECKED, FileState.UPLOADING)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    rel_path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    hash TEXT,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    last_error TEXT,
    asset_id TEXT,
    result TEXT,
    bytes_sent INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS files_state ON files (state, next_attempt_at);
CREATE INDEX IF NOT EXISTS files_hash ON files (hash);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class QueuedFile:
    rel_path: str
    size: int
    mtime_ns: int
    hash: str | None
    state: FileState
    attempts: int
    next_attempt_at: float
    last_error: str | None
    asset_id: str | None
    result: str | None
    bytes_sent: int


@dataclass(frozen=True)
class QueueStatus:
    counts: dict[str, int]
    bytes_sent: int
    failed: list[QueuedFile]
    waiting: list[QueuedFile]  # pending files that carry an error (retrying)
    meta: dict[str, str]

    def as_json(self) -> dict[str, Any]:
        def row(f: QueuedFile) -> dict[str, Any]:
            return {
                "path": f.rel_path,
                "state": f.state.value,
                "attempts": f.attempts,
                "error": f.last_error,
            }

        return {
            **self.meta,
            "counts": self.counts,
            "bytes_sent": self.bytes_sent,
            "failed": [row(f) for f in self.failed],
            "waiting": [row(f) for f in self.waiting],
        }


class PushQueue:
    """Thread-safe: the hashing threads and the event loop share one connection, serially."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # --- set-up --------------------------------------------------------------------------

    def bind(self, **values: str) -> None:
        """Record what this queue pushes where. Pushing the same folder to another server
        sends every `done` file back to the check: that server may lack it."""
        with self._tx() as db:
            old = dict(db.execute("SELECT key, value FROM meta").fetchall())
            if old.get("server") and values.get("server") and old["server"] != values["server"]:
                db.execute(
                    "UPDATE files SET state = ?, result = NULL, asset_id = NULL WHERE state = ?",
                    (FileState.HASHED, FileState.DONE),
                )
            db.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                list(values.items()),
            )

    def recover(self) -> int:
        """At start-up: uploads a killed client left `uploading` go back to the check."""
        with self._tx() as db:
            return db.execute(
                "UPDATE files SET state = ?, updated_at = ? WHERE state = ?",
                (FileState.HASHED, time.time(), FileState.UPLOADING),
            ).rowcount

    # --- what is on disk -----------------------------------------------------------------

    def observe(self, files: Iterable[tuple[str, int, int]]) -> int:
        """Files seen on disk as `(rel_path, size, mtime_ns)`: new ones are queued, changed
        ones (size or mtime differ) queued again — a changed file becomes a new version on the
        server. Returns how many were queued."""
        now = time.time()
        queued = 0
        with self._tx() as db:
            for rel, size, mtime_ns in files:
                row = db.execute(
                    "SELECT size, mtime_ns, state FROM files WHERE rel_path = ?", (rel,)
                ).fetchone()
                if row is None:
                    db.execute(
                        "INSERT INTO files (rel_path, size, mtime_ns, state, updated_at) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (rel, size, mtime_ns, FileState.QUEUED, now),
                    )
                elif (row[0], row[1]) != (size, mtime_ns) or row[2] == FileState.DELETING:
                    db.execute(
                        "UPDATE files SET size = ?, mtime_ns = ?, hash = NULL, state = ?, "
                        "attempts = 0, next_attempt_at = 0, last_error = NULL, result = NULL, "
                        "updated_at = ? WHERE rel_path = ?",
                        (size, mtime_ns, FileState.QUEUED, now, rel),
                    )
                else:
                    continue
                queued += 1
        return queued

    def known_paths(self) -> set[str]:
        with self._lock:
            return {r[0] for r in self._db.execute("SELECT rel_path FROM files")}

    def vanish(self, rel_paths: Iterable[str], *, mirror: bool) -> int:
        """Files gone from disk. Without `mirror` their rows go (the server keeps its copy);
        with it, a file the server has becomes `deleting` — unless another local file still
        has the same bytes. Returns how many rows await a server-side delete."""
        marked = 0
        with self._tx() as db:
            for rel in rel_paths:
                row = db.execute(
                    "SELECT hash, state, asset_id FROM files WHERE rel_path = ?", (rel,)
                ).fetchone()
                if row is None:
                    continue
                twin = (
                    row[0] is not None
                    and db.execute(
                        "SELECT 1 FROM files WHERE hash = ? AND rel_path != ? AND state != ?",
                        (row[0], rel, FileState.DELETING),
                    ).fetchone()
                )
                if mirror and row[1] == FileState.DONE and row[2] and not twin:
                    db.execute(
                        "UPDATE files SET state = ?, attempts = 0, next_attempt_at = 0, "
                        "last_error = NULL, updated_at = ? WHERE rel_path = ?",
                        (FileState.DELETING, time.time(), rel),
                    )
                    marked += 1
                else:
                    db.execute("DELETE FROM files WHERE rel_path = ?", (rel,))
        return marked

    # --- work ----------------------------------------------------------------------------

    def due(self, state: FileState, limit: int, now: float | None = None) -> list[QueuedFile]:
        """Files in `state` whose next attempt is due, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM files WHERE state = ? AND next_attempt_at <= ? "
                "ORDER BY next_attempt_at, rel_path LIMIT ?",
                (state, time.time() if now is None else now, limit),
            ).fetchall()
        return [_file(r) for r in rows]

    def next_due_at(self) -> float | None:
        """When the earliest pending file becomes due (None: nothing pending)."""
        with self._lock:
            row = self._db.execute(
                "SELECT MIN(next_attempt_at) FROM files WHERE state IN (?, ?, ?, ?)",
                (FileState.QUEUED, FileState.HASHED, FileState.CHECKED, FileState.DELETING),
            ).fetchone()
        return None if row[0] is None else float(row[0])

    def pending_count(self) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*) FROM files WHERE state IN (?, ?, ?, ?, ?)",
                (*PENDING, FileState.DELETING),
            ).fetchone()
        return int(row[0])

    def done_with_hash(self, file_hash: str) -> QueuedFile | None:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM files WHERE hash = ? AND state = ? LIMIT 1",
                (file_hash, FileState.DONE),
            ).fetchone()
        return None if row is None else _file(row)

    def set_hashed(self, f: QueuedFile, file_hash: str) -> bool:
        """Record a hash — only if the row still describes the file that was hashed."""
        with self._tx() as db:
            return (
                db.execute(
                    "UPDATE files SET hash = ?, state = ?, next_attempt_at = 0, updated_at = ? "
                    "WHERE rel_path = ? AND size = ? AND mtime_ns = ? AND state = ?",
                    (
                        file_hash,
                        FileState.HASHED,
                        time.time(),
                        f.rel_path,
                        f.size,
                        f.mtime_ns,
                        FileState.QUEUED,
                    ),
                ).rowcount
                == 1
            )

    def move(
        self, rel_paths: Iterable[str], state: FileState, *, expect: FileState | None = None
    ) -> int:
        """Move files to `state` (only those now in `expect`, if given); clears the error."""
        sql = (
            "UPDATE files SET state = ?, next_attempt_at = 0, last_error = NULL, updated_at = ? "
            "WHERE rel_path = ?"
        )
        now = time.time()
        with self._tx() as db:
            if expect is None:
                cur = db.executemany(sql, [(state, now, r) for r in rel_paths])
            else:
                cur = db.executemany(
                    sql + " AND state = ?", [(state, now, r, expect) for r in rel_paths]
                )
            return cur.rowcount

    def defer(self, rel_paths: Iterable[str], until: float) -> None:
        """Not yet (a file still settling): look again at `until`, no error recorded."""
        with self._tx() as db:
            db.executemany(
                "UPDATE files SET next_attempt_at = ? WHERE rel_path = ?",
                [(until, r) for r in rel_paths],
            )

    def retry_later(
        self,
        files: Iterable[QueuedFile],
        error: str,
        delay_for: Callable[[int], float],
        *,
        state: FileState | None = None,
    ) -> None:
        """A failure that may pass: count the attempt, keep (or set) the state, and try again
        after `delay_for(attempts)` seconds. The reason stays visible in `--status`."""
        now = time.time()
        with self._tx() as db:
            for f in files:
                attempts = f.attempts + 1
                # Back to `queued` (bytes refused as not matching): the hash is re-computed.
                rehash = ", hash = NULL" if state == FileState.QUEUED else ""
                db.execute(
                    "UPDATE files SET state = ?, attempts = ?, next_attempt_at = ?, "
                    f"last_error = ?, updated_at = ?{rehash} WHERE rel_path = ?",
                    (
                        state or f.state,
                        attempts,
                        now + delay_for(attempts),
                        error,
                        now,
                        f.rel_path,
                    ),
                )

    def fail(self, rel_path: str, error: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE files SET state = ?, last_error = ?, updated_at = ? WHERE rel_path = ?",
                (FileState.FAILED, error, time.time(), rel_path),
            )

    def done(self, rel_path: str, *, asset_id: str, result: str, bytes_sent: int = 0) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE files SET state = ?, asset_id = ?, result = ?, last_error = NULL, "
                "bytes_sent = bytes_sent + ?, updated_at = ? WHERE rel_path = ?",
                (FileState.DONE, asset_id, result, bytes_sent, time.time(), rel_path),
            )

    def add_bytes_sent(self, rel_path: str, sent: int) -> None:
        """Bytes of an attempt that did not end in `done` (a refused or broken upload)."""
        with self._tx() as db:
            db.execute(
                "UPDATE files SET bytes_sent = bytes_sent + ? WHERE rel_path = ?", (sent, rel_path)
            )

    def forget(self, rel_path: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM files WHERE rel_path = ?", (rel_path,))

    # --- reporting -----------------------------------------------------------------------

    def status(self, detail_limit: int = 200) -> QueueStatus:
        with self._lock:
            counts = {s.value: 0 for s in FileState}
            for state, n in self._db.execute("SELECT state, COUNT(*) FROM files GROUP BY state"):
                counts[state] = n
            sent = self._db.execute("SELECT COALESCE(SUM(bytes_sent), 0) FROM files").fetchone()
            failed = self._db.execute(
                "SELECT * FROM files WHERE state = ? ORDER BY rel_path LIMIT ?",
                (FileState.FAILED, detail_limit),
            ).fetchall()
            waiting = self._db.execute(
                "SELECT * FROM files WHERE state IN (?, ?, ?, ?, ?) AND last_error IS NOT NULL "
                "ORDER BY rel_path LIMIT ?",
                (*PENDING, FileState.DELETING, detail_limit),
            ).fetchall()
            meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        return QueueStatus(
            counts=counts,
            bytes_sent=int(sent[0]),
            failed=[_file(r) for r in failed],
            waiting=[_file(r) for r in waiting],
            meta=meta,
        )


def _file(row: tuple[Any, ...]) -> QueuedFile:
    return QueuedFile(
        rel_path=row[0],
        size=row[1],
        mtime_ns=row[2],
        hash=row[3],
        state=FileState(row[4]),
        attempts=row[5],
        next_attempt_at=row[6],
        last_error=row[7],
        asset_id=row[8],
        result=row[9],
        bytes_sent=row[10],
    )
