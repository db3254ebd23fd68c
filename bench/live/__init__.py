"""Live benchmarks for gallerysync: every figure is printed beside a bare limit measured in the
same run, on the same machine, with the same client.

Run it from the repository root (it is one suite of the single benchmark command):

    .venv/bin/python bench/run.py --suite live [--quick] [--data DIR] [--keep-homes]

Set-up
------
* Servers are real processes on loopback ports: `gallerysync --home H serve --port P` (auth
  off, SQLite in the home: `GALLERYSYNC_ENV` pins them) and, as the limit, a bare Starlette app
  run by uvicorn (`bench/live/bare.py HOST PORT`) with the settings `gallerysync serve`
  gives uvicorn (`runtime.py`: default loop and HTTP implementations, `log_level="warning"`,
  `lifespan="off"`, `access_log=False`).
* `serve` runs with `GALLERYSYNC_JOB_WORKERS=0`: the 100,000 pending thumbnail jobs of a fresh
  catalog would otherwise keep a core busy for minutes and skew every figure. Thumbnails are
  then made only on first request, which is what the cold first-paint figure measures. Before
  any measurement the bench waits until `/healthz` reports the start-up scan done and every
  source watched.
* Catalog with 100,000 assets: the scan suite's `small` tree (100,000 unique 4x4 PNGs, generated
  by `run.ensure_small`) registered with the CLI (`source add folder` + `sync`) into a home under
  `<data>/live/assets-100000/`, rebuilt only when its marker (tree parameters, the tree's
  `SD_ID`, gallerysync version, migration files) changes. Every serve runs on a fresh copy of it,
  so each run starts from the same state with no thumbnail made.
* The server logs go to files beside the homes; any line with `ERROR`, `CRITICAL` or
  `Traceback` is a sanity failure, like every check below (the suite then exits 1).
* Clients are lean on purpose, because the machine is small (2 cores) and the client shares it
  (and its garbage collector is paused while it times anything: a full collection over a
  thousand clients' state stalls it for 100+ ms, which would be charged to the server):
  raw HTTP/1.1 over asyncio (SSE clients are `asyncio.Protocol`s that only timestamp and count
  what arrives; the request client writes prebuilt requests on keep-alive connections and reads
  `Content-Length`/chunked bodies without parsing them). The client is the same for gallerysync
  and the bare limit, so its cost is in both. `RLIMIT_NOFILE` is raised when needed.

Figures and their limits
------------------------
1. SSE publish -> receive latency, p50 and p99, with 100 and 1,000 concurrent clients of
   `GET /api/changes/stream?since=now` on a `serve` whose home holds a few assets. Once every
   client has received `event: up-to-date`, K changes are published one at a time through the
   server's own process (`DELETE /api/assets/{id}`, then `POST /api/assets/{id}/restore`,
   alternately: each commit produces one change, and the in-process wake-up path is what gets
   measured; writes from another process would only be noticed by the 1 s head poll). Latency per
   client and change = time the client received the `event: change` - time just before the
   publishing request was sent; the next change is published once every client has received
   the previous one and the request has answered. A few warm-up changes are not counted. The
   bare limit: `GET /stream` (a StreamingResponse fed by one asyncio.Queue per client) and
   `POST /publish`, which puts the request body on every queue; the body is a real change event
   captured from gallerysync's stream in the same run, so both servers send the same bytes.
   K = 100 changes per run (so a single slow change is not the p99 by itself), 3 warm-up.
   Each client count is run `repeats` times, alternating gallerysync and the bare app; each side
   reports its run with the lowest p99 (other processes on the machine only ever add delay).
   Goal: p99 <= 2x the bare p99 (held at both client counts) and p99 < 100 ms at 1,000 clients.
   Every client must receive every change, exactly once; the server CPU time per change (from
   `/proc/PID/stat`) is reported beside it, and, as context, the server CPU use over 16 quiet
   seconds with the largest number of streams open (one heartbeat period falls in them).
2. Catch-up: the time from opening `/api/changes/stream?since=TOKEN`, TOKEN being 10,000
   changes behind the head of the 100,000-asset catalog (built with the catalog's own token
   encoding from the `instance` table and the sequence numbers in `changes`), to receiving
   `event: up-to-date`; exactly 10,000 entries must arrive (`event: change`, plus `id:`-only
   entries the reader may not see, of which there are none here). Streams at one position
   share their page reads, so before each run the head is moved by two changes (trash and
   restore of one asset through the server): every run starts from a position no stream has
   read. Best of `repeats`. Goal < 1 s. A second client at the last run's position (it gets
   the shared pages) is reported beside it. Limits: the bare app streaming 10,000 events of the
   same mean size, in writes of as many events as gallerysync writes at once (its
   `STREAM_BATCH`), and, for context, a bare `sqlite3` SELECT of the same rows (changes joined
   with their assets and origins).
3. `GET /api/assets?limit=200` with 100,000 assets, with 8 keep-alive connections, each sending
   its next request when the previous answer is read. gallerysync keeps rendered pages keyed
   by query and feed head, so three figures:
   a. the first page, and the page reached by following `next` 50 times, requested again and
      again (all but the first answer come from that cache): requests/s over a 5 s window after
      1 s of warm-up, windows alternating between gallerysync and the bare app, `repeats` each,
      best of them; every answer must be 200 with the captured length;
   b. every page once (500 of them, in order), right after a change moved the head, so each is
      read from the catalog: pages/s, best of `repeats` (the head moves before each), with the
      latency of the first and of the last (deepest) tenth of the pages;
   c. one client following `next` from the first page to the last, one request at a time,
      right after a change: total seconds, and the latency of the first and last tenth of the
      pages (a keyset page should cost the same at any depth).
   Limit: the bare app answering the same bytes (the captured response bodies) from memory with
   `Content-Type: application/json`, with the same client. Goal >= 0.5x for (a) and (b).
4. Time to the first thumbnail painted in Chromium (Debian's, headless, via Playwright) on the
   gallery page `/` with 100,000 assets. A script injected before the page's own scripts waits
   for the first `#grid img` (tiles are `[data-asset-id]` in `#grid`, one `<img>` each) that is
   complete with naturalWidth > 0 (seen by a capturing `load` listener, or by a check on every
   animation frame), then takes `performance.now()` in the next `requestAnimationFrame` callback
   (the frame that paints it; time origin = navigation start). The frame after, and the
   largest-contentful-paint render time of a `#grid` image when Chromium reports one (it does
   not for these tiny 4x4 thumbnails), are recorded as cross-checks. Cold: on a
   fresh copy of the catalog (no thumbnail made yet; they are made on first request), one fresh
   serve per repeat. Warm: the same page again once those thumbnails exist. Every navigation uses
   a fresh browser context (empty HTTP cache). Limit: the bare app's static page with one
   `<img>` of a WebP of the same size (gallerysync's own thumbnail of the tree's first file),
   same probe. Goal < 1 s (1,000 ms), best of `repeats`. If the page has no `#grid` image, the
   figure is reported as not measured, with what the page had.

`--quick` divides the sizes by 10 (10,000 assets, 10 and 100 SSE clients, 1,000 changes
behind, 5 pages deep, 2 s windows) for a smoke run; the absolute goals then apply to the
smaller sizes.

Results: `bench/results/live-YYYYMMDD-HHMMSS.json` (every sample summary, counts, environment)
and `.md` (the table), and the live section of `bench/results/latest.md`.
"""

from __future__ import annotations

from live.suite import live_suite

__all__ = ["live_suite"]
