"""The catalog handle: read and write transactions, and the change log written inside them.

Every mutation goes through `Catalog.write()`. The transaction collects the changes it makes and,
as its very last statement before commit, allocates their sequence numbers by bumping the single
`feed_head` row (`UPDATE … SET seq = seq + n RETURNING seq`). The row lock (PostgreSQL) or the
database write lock taken by `BEGIN IMMEDIATE` (SQLite) is held until commit, so sequence numbers
become visible in commit order and a reader that has seen seq N can never later find a smaller
one appear (DESIGN §4). One code path serves both databases.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.engine import Connection

from gallerysync.catalog import schema
from gallerysync.catalog.engine import IMMEDIATE, make_engine, migrate
from gallerysync.domain import new_id, now_ms
from gallerysync.errors import BusyError

__all__ = ["DEFAULT_OWNER", "Catalog", "WriteTx", "like_escape"]

log = logging.getLogger(__name__)
DEFAULT_OWNER = "admin"
LOCK_POLL_SECONDS = 0.2


def like_escape(text: str) -> str:
    """Escape `text` for a SQL LIKE pattern with `escape="\\"` (taken literally)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass
class _PendingChange:
    scope: str
    entity_type: str
    entity_id: str
    op: str
    version: int


class WriteTx:
    """One write transaction: the connection plus the changes it will log at commit."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._changes: dict[tuple[str, str], _PendingChange] = {}
        self.head: int | None = None

    @property
    def dialect(self) -> str:
        return self.conn.dialect.name

    def record(self, scope: str, entity_type: str, entity_id: str, op: str, version: int) -> None:
        """Log that an entity changed; a later change to the same entity in this tx wins."""
        key = (entity_type, entity_id)
        self._changes.pop(key, None)  # keep insertion order = order of last change
        self._changes[key] = _PendingChange(scope, entity_type, entity_id, op, version)

    def _flush_changes(self) -> int | None:
        if not self._changes:
            return None
        count = len(self._changes)
        head = self.conn.execute(
            update(schema.feed_head)
            .where(schema.feed_head.c.id == 1)
            .values(seq=schema.feed_head.c.seq + count)
            .returning(schema.feed_head.c.seq)
        ).scalar_one()
        first = head - count + 1
        at = now_ms()
        rows = [
            (first + i, c.scope, c.entity_type, c.entity_id, c.op, c.version, at)
            for i, c in enumerate(self._changes.values())
        ]
        self.insert_many(
            "changes", ("seq", "scope", "entity_type", "entity_id", "op", "version", "at"), rows
        )
        self._changes.clear()
        return int(head)

    def insert_many(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        on_conflict: str = "",
    ) -> None:
        """`executemany` an INSERT straight through the driver.

        For the hot paths of a scan (thousands of rows per batch): SQLAlchemy's per-row
        parameter processing costs more than SQLite's own insert. Table and column names come
        from our code, never from input. `on_conflict` is a literal clause (same syntax on
        SQLite and PostgreSQL), e.g. `ON CONFLICT (a) DO NOTHING`.
        """
        if not rows:
            return
        marker = "?" if self.conn.dialect.paramstyle == "qmark" else "%s"
        self.conn.exec_driver_sql(
            f"INSERT INTO {table} ({', '.join(columns)}) "
            f"VALUES ({', '.join([marker] * len(columns))}) {on_conflict}",
            list(rows),
        )


class Catalog:
    """Catalog database handle. Thread-safe: reads run concurrently, writes one at a time."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._write_lock = threading.Lock()
        self._commit_listeners: list[Callable[[int], None]] = []
        self.default_owner_id = ""
        self.instance_id = ""
        self.epoch = ""  # changes when the catalog is restored or moved: feed tokens reset

    @classmethod
    def open(cls, url: str) -> Catalog:
        """Connect, migrate to the newest schema, and make sure the instance rows exist."""
        catalog = cls(make_engine(url))
        migrate(catalog.engine)
        catalog._bootstrap()
        return catalog

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    def _bootstrap(self) -> None:
        with self.write() as tx:
            # Serialise concurrent first starts (PostgreSQL; SQLite's write lock already does).
            tx.conn.execute(
                select(schema.feed_head.c.seq).where(schema.feed_head.c.id == 1).with_for_update()
            )
            instance_id = tx.conn.execute(
                select(schema.instance.c.value).where(schema.instance.c.key == "instance_id")
            ).scalar_one_or_none()
            if instance_id is None:
                instance_id = new_id()
                tx.conn.execute(
                    insert(schema.instance),
                    [
                        {"key": "instance_id", "value": instance_id},
                        {"key": "epoch", "value": new_id()},
                    ],
                )
            epoch = tx.conn.execute(
                select(schema.instance.c.value).where(schema.instance.c.key == "epoch")
            ).scalar_one()
            owner = tx.conn.execute(
                select(schema.users.c.id).where(schema.users.c.name == DEFAULT_OWNER)
            ).scalar_one_or_none()
            if owner is None:
                owner = new_id()
                tx.conn.execute(
                    insert(schema.users).values(id=owner, name=DEFAULT_OWNER, created_at=now_ms())
                )
                tx.record(owner, "user", owner, "upsert", 1)
        self.instance_id = instance_id
        self.epoch = epoch
        self.default_owner_id = owner

    def add_commit_listener(self, listener: Callable[[int], None]) -> None:
        """Call `listener(head_seq)` after each committed write that logged changes."""
        self._commit_listeners.append(listener)

    def remove_commit_listener(self, listener: Callable[[int], None]) -> None:
        self._commit_listeners.remove(listener)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction (SQLite: a snapshot; PostgreSQL: read committed)."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def write(self) -> Iterator[WriteTx]:
        """A write transaction: one at a time per process, serialised across processes."""
        with self._write_lock, self.engine.connect() as raw:
            conn = raw.execution_options(**{IMMEDIATE: True})
            tx = WriteTx(conn)
            with conn.begin():
                yield tx
                tx.head = tx._flush_changes()
        if tx.head is not None:
            for listener in list(self._commit_listeners):
                try:
                    listener(tx.head)
                except Exception:  # a listener must never undo a committed write
                    log.exception("commit listener failed")

    @contextmanager
    def source_lock(
        self, source_id: str, *, wait: bool = True, cancel: threading.Event | None = None
    ) -> Iterator[None]:
        """Hold the exclusive lock of one source: one scan or watcher batch at a time, across
        processes (SQLite: an `flock` beside the database file; PostgreSQL: an advisory lock,
        so it also holds across hosts).

        Raises `BusyError` when the lock is taken and `wait` is False, or when `cancel` is set
        while waiting — so a stopping process never hangs on another one's scan.
        """
        acquire, release = self._lock_functions(source_id)
        while not acquire():
            if not wait or (cancel is not None and cancel.is_set()):
                release()
                raise BusyError(f"source {source_id} is busy: another scan holds it")
            (cancel or threading.Event()).wait(LOCK_POLL_SECONDS)
        try:
            yield
        finally:
            release()

    def _lock_functions(self, source_id: str) -> tuple[Callable[[], bool], Callable[[], None]]:
        if self.dialect == "sqlite":
            database = Path(self.engine.url.database or "")
            lock_dir = database.parent / (database.name + ".locks")
            lock_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock_dir / f"source-{source_id}.lock", os.O_RDWR | os.O_CREAT, 0o644)

            def acquire_file() -> bool:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return False
                return True

            def release_file() -> None:
                os.close(fd)  # closing the descriptor drops the flock

            return acquire_file, release_file
        key = int.from_bytes(
            hashlib.blake2b(source_id.encode(), digest_size=8).digest(), "big", signed=True
        )
        conn = self.engine.connect()
        held = [False]

        def acquire_advisory() -> bool:
            held[0] = bool(conn.exec_driver_sql(f"SELECT pg_try_advisory_lock({key})").scalar())
            conn.commit()
            return held[0]

        def release_advisory() -> None:
            try:
                if held[0]:
                    conn.exec_driver_sql(f"SELECT pg_advisory_unlock({key})")
                    conn.commit()
            finally:
                conn.close()

        return acquire_advisory, release_advisory

    def head(self) -> int:
        with self.read() as conn:
            return int(conn.execute(select(schema.feed_head.c.seq)).scalar_one())

    def changes_since(self, seq: int, limit: int = 1000) -> list[dict[str, Any]]:
        with self.read() as conn:
            rows = conn.execute(
                select(schema.changes)
                .where(schema.changes.c.seq > seq)
                .order_by(schema.changes.c.seq)
                .limit(limit)
            ).mappings()
            return [dict(r) for r in rows]
