"""Push benchmark for gallerysync: every figure is printed beside a limit measured in the same
run, on the same machine.

Run it from the repository root (it is one suite of the single benchmark command):

    .venv/bin/python bench/run.py --suite push [--quick] [--data DIR] [--keep-homes]

Set-up
------
* The folder: 1,000 unique JPEGs of ~2 MB in 10 folders, written into the run's homes
  directory (`<data>/homes/push-<stamp>/files`, removed at the end unless `--keep-homes`).
  One random-noise JPEG is encoded with Pillow (1600 x 1650 at quality 85: ~2.0 MB); each
  file is it with a COM segment naming its index inserted after the JFIF APP0 segment, so
  every file has distinct bytes and is still a complete JPEG the server's probe accepts (a
  valid JPEG followed by random bytes would be refused with 415). Every file is read once
  before anything is timed, so the page cache holds the folder for the push and its limits.
* The server: a real `gallerysync --home H serve --port P` process on loopback, on a fresh
  home for every timed push (auth off, SQLite in the home, `GALLERYSYNC_JOB_WORKERS=0` as in
  the live suite: the thumbnail jobs of the new uploads would otherwise share the machine's
  cores with the figure; thumbnails are then made on first request).
* The client: `gallerysync --home C push DIR --to URL --device bench --once --json`, a child
  process timed from spawn to exit (`os.wait4` also gives its own CPU time and peak RSS), with
  every `GALLERYSYNC_*` variable of the caller's environment dropped and
  `GALLERYSYNC_SETTLE_SECONDS=0.2` (the default 2 s settle would mostly measure the wait for
  files written moments before); its concurrency is gallerysync's default
  (`GALLERYSYNC_PUSH_CONCURRENCY`, read from `gallerysync.config`). Its queue lives in the
  home, so a fresh `--home` is a fresh client state.

Figures and their limits
------------------------
1. Push throughput: MB/s = file bytes / wall time of the push child on a fresh client home to
   a fresh `serve`; best of `repeats`. The push must exit 0 with `counts.done` = N,
   `bytes_sent` = the folder's bytes, and the server must list exactly N assets with N
   distinct hashes (`GET /api/assets?limit=500`, following `next`). Limit: a bare aiohttp
   client POSTing the same files (each read in one piece, sent with `Content-Length`) with
   the same concurrency, one connection per worker, to a bare Starlette app under uvicorn with
   `serve`'s uvicorn settings (`bench/push/bare.py`) that reads each body from
   `request.stream()`, drops it and answers 201. Goal >= 0.7x. A second, informational
   limit: the same client against the same app storing each body durably — BLAKE3 while it
   arrives, then a temp file, fsync, rename to the hash, fsync of the directory. Runs
   alternate bare, bare durable, push; best of each.
2. Re-push from a fresh client state: the same command with a new `--home` against the last
   push's server, which has every file. The client must hash every file and send only check
   requests: `bytes_sent` of its --json status must be 0 (goal), `counts.done` = N, and the
   server must still list N assets. Its wall time is printed beside the time to BLAKE3 the
   same files in the bench's process with 1 MiB reads on as many threads as the client
   hashes with (`PushClient._hash_slots`: min(4, CPUs)), best of `hash_repeats`; the ratio is
   informational (it includes the CLI's start-up, the scan, the queue's commits and the check).
3. Where the time goes: one more push (not held against any goal) to a fresh `serve` run by
   `bench/push/timed_serve.py`, which wraps gallerysync's own upload path with timers (calls,
   wall time and the worker thread's CPU time of the duplicate check, the temp file, BLAKE3 +
   write, verify, probe, fsync + rename, the catalog record; the body's arrival is what is left
   of `receive`) and then runs the CLI unchanged. The figure is `serve`'s CPU per upload (from
   `/proc`) beside the bare app's. The push line's note also has the client's timeline: when
   its log says the folder was scanned, and when its first and last file were marked done
   (`updated_at` of its queue's rows), which splits start-up and ramp-up from steady state.

`--quick` pushes 100 files in 2 folders.

Results: `bench/results/push-YYYYMMDD-HHMMSS.json` (every run, the clients' --json status,
CPU times, environment) and `.md` (the table), and the push section of
`bench/results/latest.md`.
"""

from __future__ import annotations

from push.suite import push_suite

__all__ = ["push_suite"]
