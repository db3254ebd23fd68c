"""Helpers for remote-source tests: a gallerysync home, syncs, and a comparable catalog view."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import select

from gallerysync.blobs.hashing import hash_bytes
from gallerysync.catalog import schema
from gallerysync.catalog.remote import FETCH_WANTED
from gallerysync.config import load_settings
from gallerysync.domain import Source
from gallerysync.runtime import Runtime, open_runtime
from gallerysync.sync.download import DownloadReport
from gallerysync.sync.remote import RemoteReport, add_remote_source

__all__ = [
    "add_comfyui",
    "catalog_view",
    "download_all",
    "home_runtime",
    "png",
    "remote_assets",
    "sync",
]


def home_runtime(home: Path, **overrides: str) -> Runtime:
    """A home with a short retry backoff, so retries happen within a test (the schedule is
    the same code; only its first delay is smaller)."""
    overrides.setdefault("retry_base_seconds", "0.02")
    return open_runtime(load_settings(home, environ={}, overrides=overrides))


def add_comfyui(runtime: Runtime, url: str, *, download: str = "auto", **extra: Any) -> Source:
    return add_remote_source(
        runtime.catalog, "comfyui", url, name=None, download=download, extra=extra
    )


def sync(runtime: Runtime, source: Source, mode: str = "smart", **options: Any) -> RemoteReport:
    report = runtime.sync_remote(runtime.source_by_id(source.id), mode=mode, **options)
    return report


def download_all(runtime: Runtime, source: Source, **options: Any) -> DownloadReport:
    return runtime.download(source_ids=[source.id], statuses=FETCH_WANTED, **options)


def remote_assets(runtime: Runtime, source: Source) -> list[dict[str, Any]]:
    """One row per origin of the source: its asset's bytes and state, its metadata."""
    o, a = schema.origins, schema.assets
    with runtime.catalog.read() as conn:
        rows = conn.execute(
            select(
                o.c.remote_id,
                o.c.status,
                o.c.fetch_status,
                o.c.fetch_error,
                o.c.remote_version,
                o.c.meta,
                a.c.id.label("asset_id"),
                a.c.hash,
                a.c.status.label("asset_status"),
                a.c.created_at,
                a.c.width,
                a.c.height,
            )
            .join(a, a.c.id == o.c.asset_id)
            .where(o.c.source_id == source.id)
            .order_by(o.c.remote_id)
        ).mappings()
        return [dict(r) | {"meta": json.loads(r["meta"])} for r in rows]


def catalog_view(runtime: Runtime, source: Source) -> list[tuple[Any, ...]]:
    """What must be equal whatever the sync mode: per origin, its id, state, version, bytes,
    creation time and prompt; and how many assets the owner has."""
    rows = remote_assets(runtime, source)
    with runtime.catalog.read() as conn:
        assets = conn.execute(select(schema.assets.c.hash, schema.assets.c.status)).all()
    view = [
        (
            r["remote_id"],
            r["status"],
            r["fetch_status"],
            r["remote_version"],
            r["hash"],
            r["asset_status"],
            r["created_at"],
            r["meta"].get("prompt_id"),
        )
        for r in rows
    ]
    view.append(("assets", len(assets), tuple(sorted(str(h) for h, _ in assets))))
    return view


def png(index: int) -> bytes:
    from tests.doubles.comfyui import sample_png

    return sample_png(index)


def hash_of(data: bytes) -> str:
    return hash_bytes(data)
