"""Background job workers: claim a due job, run it in a thread, record the outcome.

Workers wake when this process commits a write (a commit listener) and otherwise poll every
few seconds, so jobs enqueued by another process (a CLI `sync`) are picked up too.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket

from gallerysync.blobs.base import BlobStore
from gallerysync.catalog import Catalog
from gallerysync.catalog.jobs import (
    claim_job,
    complete_job,
    fail_job,
    recover_stale_jobs,
    release_worker_jobs,
)
from gallerysync.domain import Job
from gallerysync.errors import GallerySyncError, NotFoundError
from gallerysync.events.wait import sleep_unless, wait_any
from gallerysync.sync.thumbnails import SkipJob, make_thumbnails

__all__ = ["JOB_KINDS", "run_job", "run_workers"]

log = logging.getLogger(__name__)
JOB_KINDS = ("thumbnail", "download")
IDLE_POLL_SECONDS = 3.0


def run_job(catalog: Catalog, blobs: BlobStore, job: Job, *, download_concurrency: int = 8) -> None:
    """Run one claimed job to its end state (done, retry later, or failed)."""
    try:
        if job.kind == "thumbnail":
            make_thumbnails(catalog, blobs, [str(a) for a in job.payload["asset_ids"]])
        elif job.kind == "download":
            from gallerysync.sync.download import run_download_job

            source_id = str(job.payload["source_id"])
            run_download_job(catalog, blobs, source_id, download_concurrency)
        else:
            raise NotFoundError(f"unknown job kind {job.kind!r}")
    except SkipJob as exc:
        log.info("job %s (%s): %s", job.id, job.kind, exc)
        complete_job(catalog, job)
    except GallerySyncError as exc:
        fail_job(catalog, job, f"{type(exc).__name__}: {exc}", retryable=exc.retryable)
    except Exception as exc:  # a bug or an OS error: retry with backoff, keep the reason
        log.exception("job %s (%s) failed", job.id, job.kind)
        fail_job(catalog, job, f"{type(exc).__name__}: {exc}", retryable=True)
    else:
        complete_job(catalog, job)
        if job.kind == "download":
            from gallerysync.sync.download import requeue_if_pending

            requeue_if_pending(catalog, str(job.payload["source_id"]))


async def run_workers(
    catalog: Catalog,
    blobs: BlobStore,
    count: int,
    stop: asyncio.Event,
    *,
    download_concurrency: int = 8,
) -> None:
    """Run `count` workers until `stop` is set; running jobs are released on the way out."""
    if count <= 0:
        return
    loop = asyncio.get_running_loop()
    wake = asyncio.Event()

    def on_commit(_head: int) -> None:
        loop.call_soon_threadsafe(wake.set)

    catalog.add_commit_listener(on_commit)
    await asyncio.to_thread(recover_stale_jobs, catalog)
    prefix = f"{socket.gethostname()}:{os.getpid()}"
    try:
        await asyncio.gather(
            *(
                _worker(catalog, blobs, f"{prefix}:{n}", stop, wake, download_concurrency)
                for n in range(count)
            )
        )
    finally:
        catalog.remove_commit_listener(on_commit)
        for n in range(count):
            await asyncio.to_thread(release_worker_jobs, catalog, f"{prefix}:{n}")


async def _worker(
    catalog: Catalog,
    blobs: BlobStore,
    name: str,
    stop: asyncio.Event,
    wake: asyncio.Event,
    download_concurrency: int,
) -> None:
    while not stop.is_set():
        try:
            job = await asyncio.to_thread(claim_job, catalog, name, JOB_KINDS)
        except Exception:  # the database is away for a moment: keep the worker alive
            log.exception("worker %s: cannot claim a job; retrying", name)
            await sleep_unless(stop, IDLE_POLL_SECONDS)
            continue
        if job is None:
            wake.clear()
            await wait_any(stop, wake, timeout=IDLE_POLL_SECONDS)
            continue
        try:
            await asyncio.to_thread(
                run_job, catalog, blobs, job, download_concurrency=download_concurrency
            )
        except Exception:  # recording the outcome failed; the claim is recovered later
            log.exception("worker %s: job %s could not be recorded", name, job.id)
            await sleep_unless(stop, IDLE_POLL_SECONDS)
