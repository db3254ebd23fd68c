"""Domain records shared by every layer. Frozen dataclasses, no I/O.

Times are integer milliseconds since the Unix epoch (UTC) everywhere: they compare and sort the
same way on SQLite and PostgreSQL and never lose their timezone on the way.
"""

from __future__ import annotations

import enum
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ENTITY_KINDS",
    "Asset",
    "AssetStatus",
    "Job",
    "JobStatus",
    "Origin",
    "OriginStatus",
    "RemoteEntity",
    "RemoteItem",
    "ScanCounts",
    "Source",
    "SourceStatus",
    "StorageDir",
    "SyncRun",
    "new_id",
    "now_ms",
]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


_random = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _random.seed(os.urandom(32)))


def new_id() -> str:
    """A UUIDv7 (RFC 9562): time-sortable, so ids order roughly by creation and index well.

    The 74 random bits come from a PRNG seeded from the OS (re-seeded in forked children):
    ids must be unique, not secret, and a scan makes tens of thousands of them per second.
    """
    ms = now_ms()
    rand = _random.getrandbits(80)
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


class AssetStatus(enum.StrEnum):
    PRESENT = "present"
    MISSING = "missing"  # every origin lost its file; history and thumbnail stay


class OriginStatus(enum.StrEnum):
    PRESENT = "present"
    MISSING = "missing"


class SourceStatus(enum.StrEnum):
    OK = "ok"
    OFFLINE = "offline"  # root vanished/empty/foreign: nothing is marked missing meanwhile
    ERROR = "error"


class JobStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class Source:
    id: str
    kind: str
    name: str
    owner_id: str
    options: dict[str, Any]
    status: SourceStatus
    status_detail: str
    created_at: int


@dataclass(frozen=True)
class StorageDir:
    """A folder source's root; `id` is the UUID in its `SD_ID` file and equals the source id."""

    source_id: str
    root: str
    id_file_status: str  # ok | migrated | conflict | missing
    alias_id: str | None
    detail: str
    last_scan_at: int | None


@dataclass(frozen=True)
class Asset:
    id: str
    owner_id: str
    hash: str | None
    status: AssetStatus
    kind: str
    format: str | None
    width: int | None
    height: int | None
    size: int | None
    thumb_hash: str | None
    version: int
    created_at: int
    updated_at: int
    origins: tuple[Origin, ...] = ()


@dataclass(frozen=True)
class Origin:
    id: str
    source_id: str
    remote_id: str
    asset_id: str
    status: OriginStatus
    path: str | None
    size: int | None
    mtime_ns: int | None
    version: int
    first_seen_at: int
    last_seen_at: int


@dataclass(frozen=True)
class Job:
    id: str
    kind: str
    payload: dict[str, Any]
    status: JobStatus
    attempts: int
    max_attempts: int
    next_attempt_at: int
    last_error: str | None
    dedupe_key: str | None


@dataclass(frozen=True)
class SyncRun:
    id: str
    source_id: str
    mode: str
    status: str
    started_at: int
    finished_at: int | None
    counts: dict[str, int]
    error: str | None


@dataclass
class ScanCounts:
    """What one folder scan did; the `sync --json` contract."""

    added: int = 0
    updated: int = 0
    moved: int = 0
    missing: int = 0
    unchanged: int = 0
    errors: int = 0
    deferred: int = 0  # files still being written; picked up once stable
    hashed: int = 0  # files read and hashed (a rescan of an unchanged tree hashes none)
    error_paths: list[str] = field(default_factory=list)
    deferred_paths: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {
            "added": self.added,
            "updated": self.updated,
            "moved": self.moved,
            "missing": self.missing,
            "unchanged": self.unchanged,
            "errors": self.errors,
            "deferred": self.deferred,
            "hashed": self.hashed,
        }


@dataclass(frozen=True, slots=True)
class RemoteItem:
    """One item as the source describes it (phase 1: metadata only).

    `remote_id` is the item's stable identity within its source; `version` changes whenever the
    item may have changed (ComfyUI: the newest prompt that wrote the file; a peer: the asset's
    version), so an unchanged item costs no write. `content_hash` is the BLAKE3 of the bytes
    when the source knows it (a peer does), letting the engine merge without downloading.
    """

    remote_id: str
    version: str
    name: str  # a file name: its extension decides image/video
    created_at: int | None = None  # ms since the epoch, the source's own creation time
    size: int | None = None
    content_hash: str | None = None
    content_may_change: bool = False  # a new version may carry new bytes: revalidate them
    # Changes exactly when the bytes change (Stash: the file's md5): a new one re-fetches bytes
    # we hold, while metadata-only versions (a new tag) leave them alone.
    content_version: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # searchable (prompt, workflow…)
    deleted: bool = False  # a tombstone (sources with `tombstones`)
    # The source's keys of the entities this item links to itself (its collections, tags,
    # people, studio, groups), with a position where the source orders a collection.
    links: tuple[str, ...] = ()
    positions: dict[str, int] = field(default_factory=dict)


ENTITY_KINDS = ("tag", "person", "studio", "collection", "group")


@dataclass(frozen=True, slots=True)
class RemoteEntity:
    """An organising entity as the source describes it: a tag, person, studio, collection
    (gallery/album) or group. `remote_id` is the source's typed key (`"gallery:12"`) — the
    same key items and other entities use in their `links`. `fields` are its own scalar
    values; the ones a collection hands down to its members are `date`, `photographer` and
    `details` (catalog/organise.py)."""

    remote_id: str
    kind: str  # one of ENTITY_KINDS
    name: str
    version: str
    fields: dict[str, Any] = field(default_factory=dict)
    links: tuple[str, ...] = ()
    deleted: bool = False
