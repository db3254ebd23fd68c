"""Remote-source benchmarks for gallerysync: every figure is printed beside a limit measured in
the same run, on the same machine.

Run it from the repository root (it is one suite of the single benchmark command):

    .venv/bin/python bench/run.py --suite remote [--quick] [--data DIR] [--keep-homes]

Set-up
------
* The ComfyUI source is the project's test double (`tests/doubles/comfyui.py`, ComfyUI 0.3.75's
  `/history` and `/view`), run in a process of its own (`bench/remote/double.py`, driven over
  stdin/stdout): in the bench's process its uvicorn thread would share the interpreter lock
  with the engine under test but not with the SQLite limit. Its history is filled with
  `ComfyUIDouble.add_prompts_bulk` (default workflow: each entry carries its prompt graph and
  workflow, as ComfyUI's do), and its own counters (`requests`, `view_bytes_sent`) cross-check
  every figure.
* gallerysync runs in the bench's process, on a fresh SQLite home per timed run
  (`open_runtime(load_settings(home))` with every `GALLERYSYNC_*` variable of the caller's
  environment dropped: SQLite in the home, auth off, defaults), through the same calls as the
  CLI: `Runtime.sync_remote` and `Runtime.download`. The bare limits run in the same process.
* The peer is a real `gallerysync serve` process with `GALLERYSYNC_AUTH=on` and a bearer
  token (`gallerysync --home H token create --user admin --json`), with
  `GALLERYSYNC_JOB_WORKERS=0` like the live suite, on a copy of the live suite's home of
  10,000 assets (the scan suite's `small-quick` tree registered through the CLI; built once
  under `<data>/live/assets-10000/` and reused while its marker matches). The bench waits
  until its start-up scan has finished (read from its catalog: with auth on `/healthz` does
  not say).

Figures and their limits
------------------------
1. Metadata sync of 10,000 ComfyUI history entries with 3 image outputs each (30,000 assets):
   assets/s of `Runtime.sync_remote(source, mode="full")` (download policy `off`) on a fresh
   home, median of `rounds` (5). Limit: raw SQLite inserts of the same rows — the asset and origin
   rows that sync wrote, read back from its catalog (so the origin `meta` JSON is exactly what
   the connector stores), inserted with `executemany` into a fresh WAL file
   (synchronous=NORMAL, as the catalog) with gallerysync's own DDL for `assets` and `origins`
   (compiled from `catalog/schema.py`: same keys and indexes), 750 assets + 750 origins per
   transaction, i.e. one transaction per 250-entry page like the engine; median of `rounds`.
   Each round runs the sync and the limit back to back, taking turns at going first: this
   machine's figures drift by 2-3x over minutes, and a best-of of each side taken minutes
   apart compared a fast minute with a slow one.
   The limit leaves out what the engine also writes (a change-feed row per asset, the cursor
   and the run's progress per page) and foreign-key checks. Goal >= 0.35x. For context: tools
   in this space report about 18 images per second.
   The split: one more full sync on a fresh home through bench-side subclasses of
   `ComfyUISource` (timing `get_body` — the HTTP GET — and `parse_history` — the msgspec
   decode and the items — apart, and the whole of `list_page`) and of `RemoteSync` (timing
   `_apply`, the per-page catalog transaction). And the connector alone over a full pass (no
   catalog), beside bare aiohttp GETs of the same `/history?offset=K&max_items=250` pages
   (bodies read, not decoded).
2. Smart sync with no change on that source: wall time of `Runtime.sync_remote(mode="smart")`
   after the full sync, median of `smart_runs` (7; the first run is the one right after the
   full sync). Goal < 100 ms. Limit: one bare aiohttp `GET /history?max_items=1` round trip,
   alternating with the syncs, each on a new session and connection in its own `asyncio.run`
   (as each sync opens one); the kept-connection round trip is in the note. Each smart sync
   must skip the type after exactly one request.
3. Downloading 2,000 images of ~200 KB (noise PNGs made unique by a tEXt chunk; the
   downloader probes every image) from the double with concurrency 8: MB/s of
   `Runtime.download(source_ids=[...], concurrency=8)` on a fresh home whose untimed metadata
   sync left every origin `off`. Limit: a bare aiohttp client fetching the same `/view` URLs
   with 8 workers on 8 connections, bodies read in 256 KiB chunks (the engine's), each saved to
   a file of its own (open, write, close — what `curl -o` or `wget` do: a download ends with
   the file on disk). Goal >= 0.8x. Two informational limits: the same client dropping the
   bodies (the server and the network alone), and hashing each body with BLAKE3 into a temp
   file, then fsync, rename and fsync of the directory — a verified content-addressed download
   made durable file by file (gallerysync's downloader flushes a batch of them with `syncfs`
   instead: group commit). Every file is in the page cache before any runs. Each of `rounds`
   (5) rounds runs the bare save and gallerysync back to back, taking turns at going first,
   then the other two bare clients; medians of each (the per-round ratios are in the note:
   page-cache writes here cost 2-3x more in some minutes than in others). Nothing a run wrote
   is removed until the last round is done, and each bare run's dirty pages are flushed with
   `sync` after its clock stops: removing files between runs made the next run pay for it
   (this machine's ext4 has no journal, and its inode allocator then skips inodes freed in the
   last 30 s one by one), and a flush left to the kernel landed in a later run. The time of
   that `sync` gives one more informational limit: the bare save plus one flush at the end,
   the cheapest way for it to get its bytes to disk as gallerysync's time does. Every file
   must arrive, and the double's `view_bytes_sent` must equal the bytes stored.
4. Peer replication of 10,000 assets (metadata): assets/s of the first
   `Runtime.sync_remote(source)` (smart, which on a new source reads the peer's feed from its
   start) of a `peer` source added with `download="off"` and the token, on a fresh home, best
   of `repeats`. Limit, informational (the issue gives no goal): raw SQLite inserts of the
   same rows as in 1, 500 + 500 per transaction (one feed page).

`--quick` divides the sizes by 10 (1,000 entries, 200 downloads, a 1,000-asset peer built from
a tree of its own under `<data>/remote/`); the absolute goal then applies to the smaller source.

Results: `bench/results/remote-YYYYMMDD-HHMMSS.json` (every run, counts, environment) and `.md`
(the table), and the remote section of `bench/results/latest.md`.
"""

from __future__ import annotations

from remote.suite import remote_suite

__all__ = ["remote_suite"]
