"""The storage inspector and blob garbage collection.

`inspect` compares three views — what is on disk, the scan cache, and the catalog's origins —
for every storage dir, so a user can see what is registered, unregistered, missing, broken or
stored twice, without changing anything.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.engine import Connection

from gallerysync.blobs.local import LocalBlobStore
from gallerysync.catalog import Catalog, schema
from gallerysync.catalog.jobs import job_counts, list_jobs
from gallerysync.catalog.scan_cache import cache_errors
from gallerysync.catalog.sources import get_storage_dir, list_sources
from gallerysync.domain import JobStatus
from gallerysync.sources.folder import KIND
from gallerysync.sources.folder.walk import root_state, walk

__all__ = ["GcReport", "collect_garbage", "inspect_storage"]


def inspect_storage(
    catalog: Catalog, blobs: LocalBlobStore, *, owner_id: str | None = None
) -> dict[str, Any]:
    """A JSON-ready report: per storage dir, duplicates, asset counts, and the instance-wide
    blob store and jobs. With `owner_id`, only that user's storage dirs, duplicates and
    counts; the instance-wide parts (which are nobody's in particular) only for the local
    owner."""
    report: dict[str, Any] = {"storage_dirs": [], "blobs": None, "jobs": None}
    with catalog.read() as conn:
        sources = [
            s for s in list_sources(conn, KIND) if owner_id is None or s.owner_id == owner_id
        ]
        for source in sources:
            sd = get_storage_dir(conn, source.id)
            origins = schema.origins
            rows = conn.execute(
                select(origins.c.remote_id, origins.c.status, origins.c.asset_id).where(
                    origins.c.source_id == source.id
                )
            ).all()
            present = {r[0] for r in rows if r[1] == "present"}
            missing = sorted(r[0] for r in rows if r[1] == "missing")
            errors = cache_errors(conn, source.id)
            offline = root_state(Path(sd.root))
            on_disk: set[str] = set()
            walk_errors: list[tuple[str, str]] = []
            symlinks = 0
            if offline is None:
                walked = walk(Path(sd.root))
                on_disk = {f.rel_path for f in walked.files}
                walk_errors = walked.dir_errors
                symlinks = walked.symlinks
            errored = {p for p, _ in errors}
            unregistered = sorted(on_disk - present - errored) if offline is None else []
            report["storage_dirs"].append(
                {
                    "source": source.name,
                    "id": source.id,
                    "root": sd.root,
                    "status": source.status.value,
                    "status_detail": source.status_detail,
                    "id_file": {
                        "status": sd.id_file_status,
                        "alias": sd.alias_id,
                        "detail": sd.detail,
                    },
                    "last_scan_at": sd.last_scan_at,
                    "files_on_disk": len(on_disk) if offline is None else None,
                    "registered": len(present),
                    "unregistered": len(unregistered),
                    "unregistered_paths": unregistered[:100],
                    "missing": len(missing),
                    "missing_paths": missing[:100],
                    "errored": len(errors) + len(walk_errors),
                    "errors": [{"path": p, "error": e} for p, e in errors + walk_errors][:100],
                    "symlinks_not_followed": symlinks,
                }
            )
        groups = _duplicate_groups(conn, owner_id)
        report["duplicate_groups"] = groups
        for sd_report in report["storage_dirs"]:
            sd_report["duplicate_groups"] = sum(
                1 for g in groups if any(c["source"] == sd_report["source"] for c in g["copies"])
            )
        assets = schema.assets
        by_status = select(assets.c.status, func.count()).group_by(assets.c.status)
        if owner_id is not None:
            by_status = by_status.where(assets.c.owner_id == owner_id)
        report["assets"] = {status: int(n) for status, n in conn.execute(by_status)}
        if owner_id is not None and owner_id != catalog.default_owner_id:
            return report
        referenced = _referenced_hashes(conn)
        total_count = 0
        total_bytes = 0
        orphans: list[str] = []
        for blob_hash in blobs.iter_hashes():
            total_count += 1
            total_bytes += blobs.size_of(blob_hash)
            if blob_hash not in referenced:
                orphans.append(blob_hash)
        report["blobs"] = {
            "count": total_count,
            "bytes": total_bytes,
            "orphans": len(orphans),
            "orphan_hashes": orphans[:100],
        }
        counts = job_counts(conn)
        failed = list_jobs(conn, JobStatus.FAILED.value, limit=50)
        report["jobs"] = {
            "pending": counts[JobStatus.PENDING.value] + counts[JobStatus.RUNNING.value],
            "running": counts[JobStatus.RUNNING.value],
            "failed": counts[JobStatus.FAILED.value],
            "failed_jobs": [
                {
                    "id": j.id,
                    "kind": j.kind,
                    "payload": j.payload,
                    "error": j.last_error,
                    "attempts": j.attempts,
                }
                for j in failed
            ],
        }
    return report


def _duplicate_groups(conn: Connection, owner_id: str | None) -> list[dict[str, Any]]:
    """Assets whose bytes are present at more than one place (same or different storage dirs)."""
    origins, sources = schema.origins, schema.sources
    query = (
        select(origins.c.asset_id)
        .where(origins.c.status == "present")
        .group_by(origins.c.asset_id)
        .having(func.count() > 1)
    )
    if owner_id is not None:
        query = query.join(schema.assets, schema.assets.c.id == origins.c.asset_id).where(
            schema.assets.c.owner_id == owner_id
        )
    dup_ids = [r[0] for r in conn.execute(query)]
    groups: dict[str, list[dict[str, str]]] = {}
    for start in range(0, len(dup_ids), 500):
        chunk = dup_ids[start : start + 500]
        rows = conn.execute(
            select(origins.c.asset_id, sources.c.name, origins.c.remote_id)
            .join(sources, sources.c.id == origins.c.source_id)
            .where(origins.c.asset_id.in_(chunk), origins.c.status == "present")
            .order_by(origins.c.asset_id, sources.c.name, origins.c.remote_id)
        )
        for asset_id, source_name, remote_id in rows:
            groups.setdefault(asset_id, []).append({"source": source_name, "path": remote_id})
    return [{"asset_id": k, "copies": v} for k, v in sorted(groups.items())]


def _referenced_hashes(conn: Connection) -> set[str]:
    assets = schema.assets
    hashes = {r[0] for r in conn.execute(select(assets.c.hash).where(assets.c.hash.is_not(None)))}
    hashes |= {
        r[0]
        for r in conn.execute(select(assets.c.thumb_hash).where(assets.c.thumb_hash.is_not(None)))
    }
    return hashes


@dataclass
class GcReport:
    removed: list[str] = field(default_factory=list)
    bytes: int = 0
    temp_files: int = 0
    dry_run: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "removed": len(self.removed),
            "bytes": self.bytes,
            "temp_files": self.temp_files,
            "dry_run": self.dry_run,
            "hashes": self.removed[:1000],
        }


GC_GRACE_SECONDS = 3600


def collect_garbage(
    catalog: Catalog,
    blobs: LocalBlobStore,
    *,
    dry_run: bool,
    grace_seconds: float = GC_GRACE_SECONDS,
) -> GcReport:
    """Delete blobs that no asset references (as original or thumbnail).

    A blob is written before the transaction that references it commits, so blobs younger
    than `grace_seconds` are never collected; older candidates are re-checked inside a write
    transaction just before deletion, so one that became referenced meanwhile survives.
    """
    report = GcReport(dry_run=dry_run)
    if not dry_run:
        report.temp_files = blobs.clean_temp()
    with catalog.read() as conn:
        referenced = _referenced_hashes(conn)
    cutoff = time.time() - grace_seconds
    candidates = [
        h for h in blobs.iter_hashes() if h not in referenced and blobs.mtime_of(h) < cutoff
    ]
    assets = schema.assets
    for blob_hash in candidates:
        size = blobs.size_of(blob_hash)
        if dry_run:
            report.removed.append(blob_hash)
            report.bytes += size
            continue
        with catalog.write() as tx:
            still = tx.conn.execute(
                select(assets.c.id)
                .where((assets.c.hash == blob_hash) | (assets.c.thumb_hash == blob_hash))
                .limit(1)
            ).first()
            if still is not None:
                continue
            tx.conn.execute(delete(schema.blobs).where(schema.blobs.c.hash == blob_hash))
            if blobs.delete(blob_hash):
                report.removed.append(blob_hash)
                report.bytes += size
    return report
