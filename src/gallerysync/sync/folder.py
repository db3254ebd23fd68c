"""Folder sources: add a storage dir, scan it, apply watcher batches, find lost files.

A scan is: check the root is mounted and is the same storage dir (its `SD_ID`), walk it once,
skip files whose `(size, mtime_ns, inode)` match the scan cache, hash the rest on a thread pool
(BLAKE3 releases the GIL), and register results in batches — each batch one transaction with
its cache rows, so a killed scan loses at most one batch of work and never leaves half a batch.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from gallerysync.blobs.hashing import content_name, hash_file
from gallerysync.catalog import Catalog, schema
from gallerysync.catalog.assets import get_asset
from gallerysync.catalog.runs import finish_run, record_progress, start_run
from gallerysync.catalog.scan_cache import (
    cached_paths_under,
    find_by_hash,
    find_by_name,
    load_known_stats,
    sample_cached_paths,
)
from gallerysync.catalog.sources import (
    create_source,
    list_sources,
    mark_scanned,
    set_source_status,
    upsert_storage_dir,
)
from gallerysync.domain import OriginStatus, ScanCounts, Source, SourceStatus
from gallerysync.errors import BusyError, InvalidInputError, SourceOfflineError, StorageDirError
from gallerysync.sources.folder import KIND
from gallerysync.sources.folder.media import MEDIA_EXTENSIONS, media_kind_for_name
from gallerysync.sources.folder.sdid import SD_ID_FILE, SdIdentity, resolve_sd_id, write_id_file
from gallerysync.sources.folder.walk import (
    Examined,
    Listed,
    Outcome,
    WalkResult,
    examine,
    listed_from_stat,
    root_state,
    walk,
)
from gallerysync.sync.register import register_outcomes, sweep_vanished
from gallerysync.watch.names import is_ignored_name

__all__ = [
    "FolderScan",
    "ScanReport",
    "add_folder",
    "apply_paths",
    "find_asset_file",
    "import_files",
]

log = logging.getLogger(__name__)
_FORMAT_EXTENSIONS = {"JPEG": "jpg", "TIFF": "tif", "HEIF": "heic"}
Progress = Callable[[int, int, int], None]


@dataclass
class ScanReport:
    source: str
    status: str  # ok | offline | cancelled
    counts: ScanCounts
    seconds: float
    detail: str = ""

    def as_json(self) -> dict[str, object]:
        return {
            "source": self.source,
            "status": self.status,
            **self.counts.as_dict(),
            "seconds": round(self.seconds, 3),
            "detail": self.detail,
        }


def add_folder(
    catalog: Catalog, path: str | Path, name: str | None = None, *, owner_id: str | None = None
) -> Source:
    """Register a folder as a source of `owner_id` (default: the local owner), writing (or
    migrating) its `SD_ID` file."""
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        raise InvalidInputError(f"{root} is not a directory")
    with catalog.read() as conn:
        existing = list_sources(conn)
    known = {s.id for s in existing}
    taken = {s.name for s in existing}
    identity = resolve_sd_id(root, known, create=True)
    assert identity.sd_id is not None
    base = name or root.name or "folder"
    chosen = base
    if name is None:
        suffix = 2
        while chosen in taken:
            chosen = f"{base}-{suffix}"
            suffix += 1
    with catalog.write() as tx:
        source = create_source(
            tx,
            source_id=identity.sd_id,
            kind=KIND,
            name=chosen,
            owner_id=owner_id or catalog.default_owner_id,
            options={"root": str(root)},
        )
        upsert_storage_dir(
            tx,
            source_id=source.id,
            root=str(root),
            id_file_status=identity.status,
            alias_id=identity.alias_id,
            detail=identity.detail,
        )
    return source


class FolderScan:
    """Scan one folder source. Construct, then `run()` (or `walk()` and `run(walked)`)."""

    def __init__(
        self,
        catalog: Catalog,
        source: Source,
        *,
        workers: int = 0,
        batch_size: int = 500,
        max_attempts: int = 5,
        cancel: threading.Event | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.catalog = catalog
        self.source = source
        self.root = Path(source.options["root"])
        self.workers = workers or (os.cpu_count() or 1)
        self.batch_size = batch_size
        self.max_attempts = max_attempts
        self.cancel = cancel or threading.Event()
        self.progress = progress
        self.run_id: str | None = None

    def check_online(self) -> str | None:
        """None when the root is mounted and is this storage dir; else why it is offline.

        Also keeps the `SD_ID` migration state in the catalog current.
        """
        reason = root_state(self.root)
        identity: SdIdentity | None = None
        if reason is None:
            try:
                identity = resolve_sd_id(self.root, {self.source.id}, create=False)
            except (StorageDirError, OSError) as exc:
                reason = str(exc)
            if identity is not None:
                if identity.sd_id is None:
                    reason = self._restore_id_file()
                elif self.source.id not in (identity.sd_id, identity.alias_id):
                    reason = (
                        f"{self.root / SD_ID_FILE} holds {identity.sd_id}, not this "
                        f"source's {self.source.id}: another folder is mounted there"
                    )
        with self.catalog.write() as tx:
            if reason is None and identity is not None:
                upsert_storage_dir(
                    tx,
                    source_id=self.source.id,
                    root=str(self.root),
                    id_file_status=identity.status,
                    alias_id=identity.alias_id,
                    detail=identity.detail,
                )
            status = SourceStatus.OK if reason is None else SourceStatus.OFFLINE
            set_source_status(tx, self.source, status, reason or "")
        return reason

    def _restore_id_file(self) -> str | None:
        """`SD_ID` vanished from a non-empty root: write it back if this is still our folder
        (the catalog knows no file yet, or some files it knows are there); otherwise a
        different folder may be mounted at this path, and the source goes offline."""
        with self.catalog.read() as conn:
            known = sample_cached_paths(conn, self.source.id, 50)
        if known and not any(os.path.lexists(self.root / rel) for rel in known):
            return (
                f"{self.root / SD_ID_FILE} is missing and none of the files the catalog "
                "knows are there: is another folder mounted at this path?"
            )
        write_id_file(self.root, self.source.id)
        return None

    def walk(self) -> WalkResult:
        """Walk the root against the scan cache: new/changed files, unchanged count, vanished.

        Origins the catalog holds as present count as known too (should the cache ever lack
        them), so a file that vanished is always noticed. Paths under a directory that could
        not be read are never taken as vanished.
        """
        sid = self.source.id
        origins = schema.origins
        with self.catalog.read() as conn:
            known = load_known_stats(conn, sid)
            present = conn.execute(
                select(func.count()).where(
                    origins.c.source_id == sid, origins.c.status == OriginStatus.PRESENT
                )
            ).scalar_one()
            if present > sum(1 for v in known.values() if v is not None):
                for (rel,) in conn.execute(
                    select(origins.c.remote_id).where(
                        origins.c.source_id == sid, origins.c.status == OriginStatus.PRESENT
                    )
                ):
                    known.setdefault(rel, None)
        walked = walk(self.root, known)
        for rel, _error in walked.dir_errors:
            prefix = "" if rel == "." else rel + "/"
            walked.vanished = {v for v in walked.vanished if not v.startswith(prefix)}
        return walked

    def run(self, walked: WalkResult | None = None, *, mode: str = "full") -> ScanReport:
        """Scan while holding the source's lock (waiting for another scan of it to finish,
        unless `cancel` is set meanwhile: then the report says `cancelled`)."""
        try:
            with self.catalog.source_lock(self.source.id, cancel=self.cancel):
                return self._run_locked(walked, mode)
        except BusyError as exc:  # only the lock raises it: cancelled while waiting
            return ScanReport(self.source.name, "cancelled", ScanCounts(), 0.0, str(exc))

    def _run_locked(self, walked: WalkResult | None, mode: str) -> ScanReport:
        started = time.monotonic()
        counts = ScanCounts()
        run_id = self.run_id = start_run(self.catalog, self.source.id, mode)
        try:
            offline = self.check_online()
            if offline is not None:
                finish_run(self.catalog, run_id, "offline", counts.as_dict(), offline)
                return ScanReport(
                    self.source.name, "offline", counts, time.monotonic() - started, offline
                )
            walked = walked if walked is not None else self.walk()
            status = self._apply_walk(walked, counts)
            for rel, error in walked.dir_errors:
                counts.errors += 1
                counts.error_paths.append(rel)
                log.warning("%s: %s: %s", self.source.name, rel, error)
            finish_run(self.catalog, run_id, status, counts.as_dict())
            return ScanReport(self.source.name, status, counts, time.monotonic() - started)
        except BaseException as exc:
            finish_run(self.catalog, run_id, "failed", counts.as_dict(), repr(exc)[:2000])
            raise

    def _apply_walk(self, walked: WalkResult, counts: ScanCounts) -> str:
        counts.unchanged += walked.unchanged
        vanished = set(walked.vanished)
        if not self._examine_and_register(walked.files, vanished, counts):
            return "cancelled"
        with self.catalog.write() as tx:
            sweep_vanished(tx, self.source, vanished, counts, self.root)
            mark_scanned(tx, self.source.id)
        return "ok"

    def _examine_and_register(
        self, files: Sequence[Listed], vanished: set[str], counts: ScanCounts
    ) -> bool:
        """Hash on a pool, register in order in batches. False when cancelled."""
        total = len(files)
        done = 0
        done_bytes = 0
        batch: list[Outcome] = []
        pending: deque[Future[Outcome]] = deque()
        ahead = max(self.workers * 8, self.batch_size * 2)  # hashing goes on while we register
        source_iter = iter(files)
        with ThreadPoolExecutor(self.workers, thread_name_prefix="hash") as pool:

            def refill() -> None:
                while len(pending) < ahead:
                    listed = next(source_iter, None)
                    if listed is None:
                        return
                    pending.append(pool.submit(examine, self.root, listed))

            refill()
            while pending:
                if self.cancel.is_set():
                    for future in pending:
                        future.cancel()
                    return False
                outcome = pending.popleft().result()
                counts.hashed += 1
                refill()
                batch.append(outcome)
                done += 1
                done_bytes += outcome.listed.size
                if len(batch) >= self.batch_size:
                    self._register(batch, vanished, counts, (done, total))
                    batch = []
                if self.progress is not None and (done % 64 == 0 or done == total):
                    self.progress(done, total, done_bytes)
        if batch:
            self._register(batch, vanished, counts, (done, total))
        if self.progress is not None:
            self.progress(total, total, done_bytes)
        return not self.cancel.is_set()

    def _register(
        self,
        batch: Sequence[Outcome],
        vanished: set[str],
        counts: ScanCounts,
        progress: tuple[int, int],
    ) -> None:
        """One batch in one transaction, with the run's progress (so the feed shows it)."""
        with self.catalog.write() as tx:
            register_outcomes(
                tx, self.source, batch, vanished, counts, max_attempts=self.max_attempts
            )
            if self.run_id is not None:
                record_progress(tx, self.source, self.run_id, *progress)


def apply_paths(
    catalog: Catalog,
    source: Source,
    rel_paths: Sequence[str],
    *,
    max_attempts: int = 5,
    skip: Collection[str] = (),
    skip_newer_than_ns: int | None = None,
) -> ScanCounts:
    """Re-examine specific paths (files or directories) of one source; used by the watcher.

    A path that no longer exists is a deletion (of a file, or of everything the catalog knew
    under a directory); an existing directory is walked. Deletions are applied only while the
    root is mounted and still this storage dir. Files in `skip` (still settling) and, inside
    walked directories, files modified after `skip_newer_than_ns` are left for a later pass.
    """
    counts = ScanCounts()
    try:
        with catalog.source_lock(source.id, wait=False):
            _apply_paths_locked(
                catalog, source, rel_paths, counts, max_attempts, skip, skip_newer_than_ns
            )
    except BusyError:  # a full scan of this source is running: try these again later
        counts.deferred_paths.extend(rel_paths)
    return counts


def _apply_paths_locked(
    catalog: Catalog,
    source: Source,
    rel_paths: Sequence[str],
    counts: ScanCounts,
    max_attempts: int,
    skip: Collection[str],
    skip_newer_than_ns: int | None,
) -> None:
    scan = FolderScan(catalog, source, max_attempts=max_attempts)
    if scan.check_online() is not None:
        return
    root = scan.root
    with catalog.read() as conn:
        known = cached_paths_under(conn, source.id, rel_paths)
    listed: dict[str, Listed] = {}
    vanished: set[str] = set()
    for rel in dict.fromkeys(rel_paths):
        _collect(root, rel, known, listed, vanished)
    for rel in [r for r in listed if r in skip and r not in rel_paths]:
        del listed[rel]
    if skip_newer_than_ns is not None:
        explicit = set(rel_paths)
        for rel in [
            r
            for r, item in listed.items()
            if r not in explicit and item.mtime_ns > skip_newer_than_ns
        ]:
            del listed[rel]
            counts.deferred_paths.append(rel)
    outcomes = [examine(root, item) for item in listed.values()]
    counts.hashed += len(outcomes)
    with catalog.write() as tx:
        register_outcomes(tx, source, outcomes, vanished, counts, max_attempts=max_attempts)
        sweep_vanished(tx, source, vanished, counts, root)


def inside_root(root: Path, rel: str) -> bool:
    """True when `root/rel` resolves to itself under `root`: no `..`, and no symbolic link on
    the way (a linked directory would let files from outside the storage dir in)."""
    parts = Path(rel).parts
    if not parts or ".." in parts or Path(rel).is_absolute():
        return False
    real_root = Path(os.path.realpath(root))
    return Path(os.path.realpath(root / rel)) == real_root.joinpath(*parts)


def _collect(
    root: Path,
    rel: str,
    known: set[str],
    listed: dict[str, Listed],
    vanished: set[str],
) -> None:
    """Turn one watcher path into files to examine and paths that vanished (`known`: the
    cached paths at or below it)."""
    path = root / rel
    prefix = rel.rstrip("/") + "/"
    if any(is_ignored_name(part) for part in Path(rel).parts):
        return
    try:
        st = path.lstat()
    except FileNotFoundError:
        vanished.update(k for k in known if k == rel or k.startswith(prefix))
        return
    except OSError as exc:  # unreadable: say nothing about what is under it
        log.warning("%s: %s", path, exc)
        return
    if not inside_root(root, rel):
        return
    if stat.S_ISDIR(st.st_mode):
        sub = walk(path)
        seen = set()
        for item in sub.files:
            full = prefix + item.rel_path
            seen.add(full)
            listed[full] = Listed(full, item.size, item.mtime_ns, item.inode)
        unreadable = [prefix + ("" if d == "." else d + "/") for d, _ in sub.dir_errors]
        vanished.update(
            k
            for k in known
            if k.startswith(prefix) and k not in seen and not k.startswith(tuple(unreadable))
        )
        return
    if not stat.S_ISREG(st.st_mode) or media_kind_for_name(path.name) is None:
        return  # symlinks, FIFOs, sockets, devices, non-media
    listed[rel] = listed_from_stat(rel, st)


def find_asset_file(catalog: Catalog, asset_id: str) -> Path | None:
    """Where an asset's bytes are on disk now, looking in every storage dir before giving up.

    Order: its present origins; then any scanned file with the same hash (scan cache); then a
    file with the same name in any storage dir, verified by hash. A file found this way is
    registered, so the catalog learns where it went.
    """
    with catalog.read() as conn:
        asset = get_asset(conn, asset_id)
        sources = {s.id: s for s in list_sources(conn, KIND)}
        if asset.hash is None:
            return None
        stale: list[tuple[Source, str]] = []
        for origin in asset.origins:
            src = sources.get(origin.source_id)
            if src is None or origin.status != OriginStatus.PRESENT:
                continue
            path = Path(src.options["root"]) / origin.remote_id
            if path.is_file():
                return path
            stale.append((src, origin.remote_id))
        by_hash = find_by_hash(conn, asset.hash)
        names = {Path(o.remote_id).name for o in asset.origins}
        by_name = [hit for name in names for hit in find_by_name(conn, name)]
    for src, rel in stale:  # the catalog believed these files were there: they are not
        apply_paths(catalog, src, [rel])
    candidates = [(sd, rel) for sd, rel in by_hash] + [(sd, rel) for sd, rel, _ in by_name]
    for sd, rel in candidates:
        src = sources.get(sd)
        if src is not None and _verify_and_register(catalog, src, rel, asset.hash):
            return Path(src.options["root"]) / rel
    for src in sources.values():
        root = Path(src.options["root"])
        if root_state(root) is not None:
            continue
        for name in names:
            for dirpath, _dirs, filenames in os.walk(root):
                if name in filenames:
                    rel = Path(dirpath, name).relative_to(root).as_posix()
                    if _verify_and_register(catalog, src, rel, asset.hash):
                        return root / rel
    return None


def _verify_and_register(catalog: Catalog, source: Source, rel: str, wanted: str) -> bool:
    root = Path(source.options["root"])
    try:
        st = (root / rel).lstat()
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode) or not inside_root(root, rel):
        return False
    outcome = examine(root, listed_from_stat(rel, st))
    if getattr(outcome, "hash", None) != wanted:
        return False
    apply_paths(catalog, source, [rel])
    return True


@dataclass
class Imported:
    source_path: str
    rel_path: str | None
    status: str  # copied | already-there | error
    detail: str = ""


def import_files(catalog: Catalog, source: Source, paths: Sequence[str | Path]) -> list[Imported]:
    """Copy files into a folder source under content-addressed names and register them.

    Each file is written as `<first 32 hex of its BLAKE3>.<ext>` at the root of the storage
    dir — through a temp name, fsynced, renamed — so two machines importing the same image into
    a shared folder write the same name with the same bytes and never clobber each other.
    Files that are not readable, complete images or videos are refused, and nothing is written.
    """
    root = Path(source.options["root"])
    if root_state(root) is not None:
        raise SourceOfflineError(f"{source.name} is offline: {root_state(root)}")
    results: list[Imported] = []
    registered: list[str] = []
    for raw in paths:
        path = Path(raw).expanduser()
        try:
            st = path.stat()
            listed = listed_from_stat(path.name, st)
        except OSError as exc:
            results.append(Imported(str(path), None, "error", exc.strerror or str(exc)))
            continue
        outcome = examine(path.parent, listed)
        if not isinstance(outcome, Examined):
            detail = getattr(outcome, "error", None) or type(outcome).__name__.lower()
            results.append(Imported(str(path), None, "error", str(detail)))
            continue
        ext = path.suffix.lstrip(".").lower()
        if ext not in MEDIA_EXTENSIONS:  # keep a name scans and watchers will recognise
            ext = _FORMAT_EXTENSIONS.get(outcome.media.format, outcome.media.format.lower())
        name = content_name(outcome.hash, ext)
        target = root / name
        if target.exists() and hash_file(target)[0] == outcome.hash:
            results.append(Imported(str(path), name, "already-there"))
            registered.append(name)
            continue
        tmp = root / f".{name}.{os.getpid()}.tmp"
        try:
            with open(path, "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
                dst.flush()
                os.fsync(dst.fileno())
            if hash_file(tmp)[0] != outcome.hash:
                raise OSError(f"{path} changed while it was copied")
            os.replace(tmp, target)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            results.append(Imported(str(path), None, "error", str(exc)))
            continue
        results.append(Imported(str(path), name, "copied"))
        registered.append(name)
    if registered:
        apply_paths(catalog, source, registered)
    return results
