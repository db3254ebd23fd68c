"""Live benchmarks for gallerysync: every figure is printed beside a bare limit measured in the
same run, on the same machine, with the same client.

Run it from the repository root (it is one suite of the single benchmark command):

    .venv/bin/python bench/run.py --suite live [--quick] [--data DIR] [--keep-homes]

Set-up
------
* Servers are real processes on loopback ports: `gallerysync --home H serve --port P` (auth
  off, SQLite in the home: `GALLERYSYNC_ENV` pins them) and, as the limit, a bare Starlette app
  run by uvicorn (`bench/live.py --bare-server PORT`) with the settings `gallerysync serve`
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

import asyncio
import contextlib
import gc
import json
import math
import os
import re
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import run
from run import Line, Results, log

BENCH_FILE = Path(__file__).resolve()
BARE_SERVER = "--bare-server"
HOST = "127.0.0.1"
HOME_BUILDER_VERSION = 1
CONNECT_BATCH = 100
READY_TIMEOUT = 120.0
EVENT_TIMEOUT = 60.0
PAINT_TIMEOUT_MS = 15_000
PUBLISH_GAP = 0.02
IDLE_WINDOW = 16.0  # > GALLERYSYNC_HEARTBEAT_SECONDS (15): every stream's heartbeat falls in it
SSE_P99_BOUND_MS = 100.0
CATCH_UP_BOUND_S = 1.0
PAINT_BOUND_MS = 1000.0
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PROBLEM = re.compile(r"\b(ERROR|CRITICAL)\b|Traceback")
# Pinned for every gallerysync process of the bench, whatever the caller's environment says:
# the catalog is the home's SQLite file, auth is off (loopback), heartbeats are the default.
GALLERYSYNC_ENV = {
    "GALLERYSYNC_DATABASE_URL": "",
    "GALLERYSYNC_AUTH": "off",
    "GALLERYSYNC_HEARTBEAT_SECONDS": "15",
}
SERVE_ENV = {**GALLERYSYNC_ENV, "GALLERYSYNC_JOB_WORKERS": "0"}
MB = run.MB


@dataclass(frozen=True)
class LiveSizes:
    assets: int
    clients: tuple[int, ...]
    publishes: int
    warmup: int
    behind: int
    list_limit: int
    list_connections: int
    list_seconds: float
    deep_pages: int
    few_assets: int
    repeats: int


FULL = LiveSizes(
    assets=run.FULL.small,
    clients=(100, 1_000),
    publishes=100,
    warmup=3,
    behind=10_000,
    list_limit=200,
    list_connections=8,
    list_seconds=5.0,
    deep_pages=50,
    few_assets=8,
    repeats=3,
)
QUICK = LiveSizes(
    assets=run.QUICK.small,
    clients=(10, 100),
    publishes=20,
    warmup=3,
    behind=1_000,
    list_limit=200,
    list_connections=8,
    list_seconds=2.0,
    deep_pages=5,
    few_assets=8,
    repeats=3,
)


class Sanity:
    """Collects sanity failures: they make the suite exit 1 (the goals only say PASS/MISS)."""

    def __init__(self, results: Results) -> None:
        self.results = results

    def fail(self, message: str) -> None:
        self.results.warnings.append(message)
        log("WARNING " + message)

    def expect(self, what: str, got: Any, wanted: Any) -> None:
        if got != wanted:
            self.fail(f"{what}: got {got}, expected {wanted}")


# --- processes -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def raise_nofile(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        log(f"RLIMIT_NOFILE raised from {soft} to {new}")


class Server:
    """A server subprocess on a loopback port; its output goes to a log file."""

    def __init__(self, name: str, cmd: Sequence[str], log_path: Path, env: dict[str, str]) -> None:
        self.name = name
        self.port = int(cmd[-1])
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            list(cmd), env={**os.environ, **env}, stdout=self._log, stderr=subprocess.STDOUT
        )

    @classmethod
    def gallerysync(cls, home: Path, log_path: Path) -> Server:
        cmd = [*run.gallerysync_command(), "--home", str(home), "serve", "--port", str(free_port())]
        return cls("gallerysync serve", cmd, log_path, SERVE_ENV)

    @classmethod
    def bare(cls, log_path: Path) -> Server:
        cmd = [sys.executable, str(BENCH_FILE), BARE_SERVER, str(free_port())]
        return cls("bare app", cmd, log_path, {})

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process, all threads (from /proc/PID/stat)."""
        stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited {self.proc.returncode}: {self.log_path.read_text()[-4000:]}"
            )

    async def wait_ready(self, path: str, ready: Callable[[bytes], bool]) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            self.check_alive()
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                conn = await HttpConn.open(self.port)
                try:
                    status, body = await conn.request("GET", path)
                finally:
                    conn.close()
                if status == 200 and ready(body):
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not ready after {READY_TIMEOUT:.0f}s")
            await asyncio.sleep(0.2)

    async def wait_serve_ready(self) -> None:
        def ready(body: bytes) -> bool:
            health = json.loads(body)
            return bool(
                health.get("startup_scan") == "done"
                and all(s.get("watching") for s in health.get("sources", []))
            )

        await self.wait_ready("/healthz", ready)

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(30)
        self._log.close()
        return code

    def log_problems(self) -> list[str]:
        text = self.log_path.read_text(errors="replace")
        return [line for line in text.splitlines() if PROBLEM.search(line)]


# --- a lean HTTP/1.1 client ------------------------------------------------------------------


class HttpConn:
    """One keep-alive HTTP/1.1 connection: prebuilt requests out, bodies in, no parsing."""

    def __init__(self, port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.port = port
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> HttpConn:
        reader, writer = await asyncio.open_connection(HOST, port, limit=1 << 22)
        return cls(port, reader, writer)

    def build(self, method: str, path: str, body: bytes = b"", headers: str = "") -> bytes:
        length = f"Content-Length: {len(body)}\r\n" if body or method != "GET" else ""
        head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n{length}{headers}\r\n"
        return head.encode() + body

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: str = ""
    ) -> tuple[int, bytes]:
        return await self.send(self.build(method, path, body, headers))

    async def send(self, raw: bytes) -> tuple[int, bytes]:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        match = re.search(rb"\r\ncontent-length: *(\d+)", lower)
        if match:
            return status, await self.reader.readexactly(int(match.group(1)))
        if b"\r\ntransfer-encoding: chunked" in lower:
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                data = await self.reader.readexactly(size + 2)
                if size == 0:
                    return status, b"".join(parts)
                parts.append(data[:-2])
        return status, b""

    def close(self) -> None:
        self.writer.close()


# --- SSE clients -----------------------------------------------------------------------------

CHANGE = b"event: change"
READY = b"event: up-to-date"
RESET = b"event: reset"
TAIL = 16  # > len(READY) - 1; the last len(CHANGE) - 1 bytes of it find a split CHANGE


class Fanout:
    """Counts what a set of SSE clients received; wakes the bench when all got change k."""

    def __init__(self, clients: int) -> None:
        self.clients = clients
        self.ready = 0
        self.all_ready = asyncio.Event()
        self.received = 0
        self.target = 0
        self.done = asyncio.Event()
        self.errors: list[str] = []
        self.closing = False

    def expect(self, changes_each: int) -> None:
        self.target = self.clients * changes_each
        self.done.clear()
        if self.received >= self.target:
            self.done.set()

    def changed(self, count: int) -> None:
        self.received += count
        if self.received >= self.target:
            self.done.set()

    def became_ready(self) -> None:
        self.ready += 1
        if self.ready >= self.clients:
            self.all_ready.set()

    def error(self, message: str) -> None:
        self.errors.append(message)
        self.done.set()
        self.all_ready.set()


class SseClient(asyncio.Protocol):
    """Sends one prebuilt GET, then timestamps every `event: change` as its bytes arrive."""

    def __init__(self, fanout: Fanout, request: bytes, capture: bool = False) -> None:
        self.fanout = fanout
        self.request = request
        self.capture = capture
        self.raw: list[bytes] = []
        self.times: list[float] = []
        self.ready_at: float | None = None
        self.nbytes = 0
        self.tail = b""
        self.status_checked = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        self.nbytes += len(data)
        if self.capture:
            self.raw.append(data)
        if not self.status_checked:
            self.status_checked = True
            if not data.startswith(b"HTTP/1.1 200"):
                self.fanout.error(f"stream answered {data[:40]!r}")
        seen = self.tail + data
        count = (self.tail[-(len(CHANGE) - 1) :] + data).count(CHANGE)
        if count:
            self.times.extend([now] * count)
            self.fanout.changed(count)
        if self.ready_at is None and READY in seen:
            self.ready_at = now
            self.fanout.became_ready()
        if RESET in seen:
            self.fanout.error("stream sent event: reset")
        self.tail = seen[-TAIL:]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.fanout.closing:
            self.fanout.error(f"stream closed by the server ({exc})")

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def sse_request(port: int, path: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nAccept: text/event-stream\r\n"
        "Cache-Control: no-cache\r\n\r\n"
    ).encode()


async def open_clients(
    port: int, path: str, count: int, fanout: Fanout, capture: bool = False
) -> list[SseClient]:
    loop = asyncio.get_running_loop()
    request = sse_request(port, path)
    clients: list[SseClient] = []
    for start in range(0, count, CONNECT_BATCH):
        batch = await asyncio.gather(
            *(
                loop.create_connection(lambda: SseClient(fanout, request, capture), HOST, port)
                for _ in range(min(CONNECT_BATCH, count - start))
            )
        )
        clients += [protocol for _transport, protocol in batch]
    return clients


def close_clients(fanout: Fanout, clients: Sequence[SseClient]) -> None:
    fanout.closing = True
    for client in clients:
        client.close()


def change_events(raw: bytes) -> list[bytes]:
    """The `event: change` events in a captured stream (one HTTP chunk each, so contiguous)."""
    return re.findall(rb"id: [^\n]*\nevent: change\ndata: [^\n]*\n\n", raw)


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


@contextlib.contextmanager
def client_gc_paused() -> Iterator[None]:
    """No garbage collection in the client while it times something: a full collection over
    a thousand clients' state pauses it for 100+ ms, and that pause would be charged to
    whichever server is being measured."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def mark_load(results: Results, phase: str) -> None:
    """Note the load average as a phase starts: other processes make figures noisier."""
    results.raw.setdefault("load_average", {})[phase] = [round(x, 2) for x in os.getloadavg()]


def client_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- the bare limit --------------------------------------------------------------------------


def sized_event(size: int, index: int) -> bytes:
    """An SSE change event of exactly `size` bytes (`size` >= 64)."""
    head = f"id: {index:019d}\nevent: change\ndata: ".encode()
    shell = b'{"pad":""}' + b"\n\n"
    return head + b'{"pad":"' + b"x" * (size - len(head) - len(shell)) + b'"}\n\n'


def bare_app() -> Any:
    """The limit: Starlette with nothing but what each figure needs, all from memory."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response, StreamingResponse
    from starlette.routing import Route

    queues: set[asyncio.Queue[bytes]] = set()
    files: dict[str, tuple[bytes, str]] = {}
    sse_headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}

    async def stream(_request: Request) -> StreamingResponse:
        queue: asyncio.Queue[bytes] = asyncio.Queue()

        async def events() -> Any:
            queues.add(queue)
            try:
                yield b"retry: 3000\n\n"
                yield b"event: up-to-date\ndata: {}\n\n"
                while True:
                    yield await queue.get()
            finally:
                queues.discard(queue)

        return StreamingResponse(events(), media_type="text/event-stream", headers=sse_headers)

    async def publish(request: Request) -> Response:
        body = await request.body()
        for queue in queues:
            queue.put_nowait(body)
        return Response(b'{"clients": %d}' % len(queues), media_type="application/json")

    async def backlog(request: Request) -> StreamingResponse:
        count = int(request.query_params["n"])
        size = int(request.query_params["size"])
        batch = int(request.query_params["batch"])

        async def events() -> Any:
            yield b"retry: 3000\n\n"
            for start in range(0, count, batch):
                yield b"".join(
                    sized_event(size, i) for i in range(start, min(count, start + batch))
                )
            yield b"event: up-to-date\ndata: {}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream", headers=sse_headers)

    async def put_file(request: Request) -> Response:
        name = request.path_params["name"]
        files[name] = (await request.body(), request.headers["content-type"])
        return Response(b"{}", media_type="application/json")

    async def get_file(request: Request) -> Response:
        body, media_type = files[request.path_params["name"]]
        return Response(body, media_type=media_type)

    async def health(_request: Request) -> Response:
        return Response(b"{}", media_type="application/json")

    return Starlette(
        routes=[
            Route("/health", health),
            Route("/stream", stream),
            Route("/publish", publish, methods=["POST"]),
            Route("/backlog", backlog),
            Route("/files/{name}", put_file, methods=["PUT"]),
            Route("/files/{name}", get_file),
        ]
    )


def bare_server_main(argv: Sequence[str]) -> int:
    import uvicorn

    # The same settings `gallerysync serve` gives uvicorn (runtime.py).
    config = uvicorn.Config(
        bare_app(),
        host=HOST,
        port=int(argv[0]),
        log_level="warning",
        lifespan="off",
        access_log=False,
    )
    uvicorn.Server(config).run()
    return 0


# --- data ------------------------------------------------------------------------------------


def _gallerysync(*args: str) -> str:
    done = subprocess.run(
        [*run.gallerysync_command(), *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **GALLERYSYNC_ENV},
    )
    if done.returncode != 0:
        raise RuntimeError(f"gallerysync {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return done.stdout


def _add_and_sync(home: Path, tree: Path, want: int) -> None:
    _gallerysync("--home", str(home), "source", "add", "folder", str(tree), "--json")
    reports = json.loads(_gallerysync("--home", str(home), "sync", "--json"))
    if len(reports) != 1 or reports[0]["status"] != "ok" or reports[0]["added"] != want:
        raise RuntimeError(f"building {home}: sync reported {reports}")


def _migrations() -> list[str]:
    import gallerysync

    versions = Path(gallerysync.__file__).parent / "catalog" / "migrations" / "versions"
    return sorted(p.name for p in versions.glob("[0-9]*.py"))


def ensure_assets_home(data: Path, tree: Path, assets: int) -> Path:
    """A home with the tree registered (`source add` + `sync` through the CLI), reused while
    its marker matches. Never served itself: every serve gets a copy."""
    import gallerysync

    base = data / "live" / f"assets-{assets}"
    home = base / "home"
    marker = base / "home.complete.json"
    sd_id = tree / "SD_ID"
    params = {
        "kind": "live-assets",
        "assets": assets,
        "tree": str(tree),
        "tree_params": json.loads(tree.with_name(tree.name + ".complete.json").read_text()),
        "sd_id": sd_id.read_text().strip() if sd_id.exists() else None,
        "gallerysync": gallerysync.__version__,
        "migrations": _migrations(),
        "builder": HOME_BUILDER_VERSION,
    }
    try:
        if json.loads(marker.read_text()) == params and home.is_dir():
            log(f"reusing {home} ({assets:,} assets)")
            return home
    except (OSError, ValueError):
        pass
    log(f"building a home with {assets:,} assets from {tree} (CLI add + sync) ...")
    started = time.perf_counter()
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    _add_and_sync(home, tree, assets)
    params["sd_id"] = sd_id.read_text().strip()
    marker.write_text(json.dumps(params, indent=2) + "\n")
    log(f"  built in {time.perf_counter() - started:.1f}s")
    return home


def ensure_few_tree(data: Path, count: int) -> Path:
    tree = data / "live" / "few"
    params = {"kind": "few", "files": count, "generator": run.GENERATOR_VERSION}
    if not run._tree_ready(tree, params):
        run._reset_tree(tree)
        for index in range(count):
            (tree / f"f{index}.png").write_bytes(run._tiny_png(16_000_000 + index))
        run._mark_ready(tree, params)
    return tree


def first_asset_id(home: Path) -> str:
    conn = sqlite3.connect(f"file:{home / 'catalog.sqlite3'}?mode=ro", uri=True)
    try:
        return str(conn.execute("SELECT id FROM assets ORDER BY id LIMIT 1").fetchone()[0])
    finally:
        conn.close()


def copy_home(source: Path, target: Path) -> Path:
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)
    return target


# --- 1. SSE fan-out latency ------------------------------------------------------------------


@dataclass
class FanoutRun:
    clients: int
    publishes: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    last_client_p50_ms: float
    request_p50_ms: float
    server_cpu_ms_per_change: float
    client_cpu_ms_per_change: float
    connect_seconds: float
    idle_cpu_percent: float | None = None  # of one core, all streams open and nothing published
    last_client_ms: list[float] = field(default_factory=list)  # per change: the slowest client
    errors: list[str] = field(default_factory=list)


async def fanout_run(
    sanity: Sanity,
    server: Server,
    label: str,
    path: str,
    clients_wanted: int,
    publish: Callable[[HttpConn, int], Awaitable[int]],
    sizes: LiveSizes,
    idle: float = 0.0,
) -> FanoutRun:
    """Open the clients, wait until all are live, optionally measure the server's CPU use over
    `idle` quiet seconds, then publish and time the changes."""
    with client_gc_paused():
        return await _fanout_run(sanity, server, label, path, clients_wanted, publish, sizes, idle)


async def _fanout_run(
    sanity: Sanity,
    server: Server,
    label: str,
    path: str,
    clients_wanted: int,
    publish: Callable[[HttpConn, int], Awaitable[int]],
    sizes: LiveSizes,
    idle: float,
) -> FanoutRun:
    fanout = Fanout(clients_wanted)
    started = time.perf_counter()
    clients = await open_clients(server.port, path, clients_wanted, fanout)
    try:
        await asyncio.wait_for(fanout.all_ready.wait(), READY_TIMEOUT)
    except TimeoutError:
        fanout.error(f"only {fanout.ready} of {clients_wanted} clients got up-to-date")
    connect_seconds = time.perf_counter() - started
    idle_cpu_percent = None
    if idle and not fanout.errors:
        cpu0 = server.cpu_seconds()
        await asyncio.sleep(idle)
        idle_cpu_percent = (server.cpu_seconds() - cpu0) / idle * 100
    conn = await HttpConn.open(server.port)
    sent: list[float] = []
    answered: list[float] = []
    total = sizes.warmup + sizes.publishes
    cpu = client = 0.0
    try:
        for k in range(total):
            if fanout.errors:
                break
            if k == sizes.warmup:
                cpu, client = server.cpu_seconds(), client_cpu_seconds()
            fanout.expect(k + 1)
            t0 = time.perf_counter()
            status = await publish(conn, k)
            answered.append(time.perf_counter() - t0)
            sent.append(t0)
            sanity.expect(f"{label}: publish {k} answered", status, 200)
            try:
                await asyncio.wait_for(fanout.done.wait(), EVENT_TIMEOUT)
            except TimeoutError:
                fanout.error(f"change {k}: {fanout.received} of {fanout.target} deliveries")
            await asyncio.sleep(PUBLISH_GAP)
        cpu = server.cpu_seconds() - cpu
        client = client_cpu_seconds() - client
        await asyncio.sleep(0.3)  # anything extra would arrive now
    finally:
        close_clients(fanout, clients)
        conn.close()
    for message in fanout.errors:
        sanity.fail(f"{label}: {message}")
    counts = sorted({len(c.times) for c in clients})
    sanity.expect(f"{label}: changes received per client", counts, [total])
    latencies: list[float] = []
    last: list[float] = []
    for k in range(sizes.warmup, min(total, len(sent))):
        per_change = [c.times[k] - sent[k] for c in clients if len(c.times) > k]
        latencies += per_change
        if per_change:
            last.append(max(per_change))
    if not latencies:
        latencies = last = [math.nan]
    ms = 1000.0
    result = FanoutRun(
        clients=clients_wanted,
        publishes=sizes.publishes,
        p50_ms=percentile(latencies, 50) * ms,
        p99_ms=percentile(latencies, 99) * ms,
        max_ms=max(latencies) * ms,
        last_client_p50_ms=statistics.median(last) * ms,
        request_p50_ms=statistics.median(answered[sizes.warmup :] or [math.nan]) * ms,
        server_cpu_ms_per_change=cpu / sizes.publishes * ms,
        client_cpu_ms_per_change=client / sizes.publishes * ms,
        connect_seconds=connect_seconds,
        idle_cpu_percent=idle_cpu_percent,
        last_client_ms=[round(x * ms, 2) for x in last],
        errors=fanout.errors,
    )
    log(
        f"  {label}, {clients_wanted} clients: p50 {result.p50_ms:.1f} ms, p99 "
        f"{result.p99_ms:.1f} ms, last client p50 {result.last_client_p50_ms:.1f} ms, server "
        f"CPU {result.server_cpu_ms_per_change:.1f} ms/change"
    )
    await asyncio.sleep(1.0)  # let the server finish closing the streams
    server.check_alive()
    return result


async def capture_change_event(sanity: Sanity, serve: Server, asset_id: str) -> bytes:
    """One real `event: change` from gallerysync's stream: the bare app publishes these bytes."""
    fanout = Fanout(1)
    clients = await open_clients(serve.port, "/api/changes/stream?since=now", 1, fanout, True)
    conn = await HttpConn.open(serve.port)
    try:
        await asyncio.wait_for(fanout.all_ready.wait(), READY_TIMEOUT)
        for k, method in enumerate(("DELETE", "POST")):
            fanout.expect(k + 1)
            suffix = "" if method == "DELETE" else "/restore"
            status, _ = await conn.request(method, f"/api/assets/{asset_id}{suffix}")
            sanity.expect(f"capture: {method} answered", status, 200)
            await asyncio.wait_for(fanout.done.wait(), EVENT_TIMEOUT)
    finally:
        close_clients(fanout, clients)
        conn.close()
    events = change_events(b"".join(clients[0].raw))
    sanity.expect("capture: change events", len(events), 2)
    entry = json.loads(events[0].split(b"data: ", 1)[1])
    sanity.expect("capture: event entity", (entry["type"], entry["id"]), ("asset", asset_id))
    return events[0]


async def bench_sse(
    results: Results, sanity: Sanity, sizes: LiveSizes, data: Path, homes: Path
) -> None:
    mark_load(results, "sse")
    tree = ensure_few_tree(data, sizes.few_assets)
    home = homes / "live-sse"
    log(f"SSE: fresh home with {sizes.few_assets} assets ...")
    _add_and_sync(home, tree, sizes.few_assets)
    asset_id = first_asset_id(home)
    serve = Server.gallerysync(home, homes / "serve-sse.log")
    bare = Server.bare(homes / "bare-sse.log")
    runs: dict[str, list[FanoutRun]] = {"gallerysync": [], "bare": []}
    try:
        await serve.wait_serve_ready()
        await bare.wait_ready("/health", lambda _body: True)
        event = await capture_change_event(sanity, serve, asset_id)
        log(f"SSE: change events are {len(event)} bytes")

        async def publish_gallerysync(conn: HttpConn, k: int) -> int:
            if k % 2 == 0:
                return (await conn.request("DELETE", f"/api/assets/{asset_id}"))[0]
            return (await conn.request("POST", f"/api/assets/{asset_id}/restore"))[0]

        async def publish_bare(conn: HttpConn, _k: int) -> int:
            return (await conn.request("POST", "/publish", event))[0]

        for count in sizes.clients:
            for repeat in range(sizes.repeats):
                log(
                    f"SSE: {count} clients, {sizes.publishes} changes (+{sizes.warmup} warm-up), "
                    f"run {repeat + 1}/{sizes.repeats} ..."
                )
                idle = IDLE_WINDOW if repeat == 0 and count == max(sizes.clients) else 0.0
                runs["gallerysync"].append(
                    await fanout_run(
                        sanity,
                        serve,
                        "gallerysync",
                        "/api/changes/stream?since=now",
                        count,
                        publish_gallerysync,
                        sizes,
                        idle,
                    )
                )
                runs["bare"].append(
                    await fanout_run(
                        sanity, bare, "bare", "/stream", count, publish_bare, sizes, idle
                    )
                )
    finally:
        serve.stop()
        bare.stop()
    problems = serve.log_problems() + bare.log_problems()
    sanity.expect("SSE: error lines in the server logs", problems[:5], [])
    results.raw["sse"] = {
        "event_bytes": len(event),
        "asset_id": asset_id,
        "runs": {name: [asdict(r) for r in rs] for name, rs in runs.items()},
        "serve_log_lines": len(serve.log_path.read_text().splitlines()),
    }
    for count in sizes.clients:
        g = _best_fanout(runs["gallerysync"], count)
        b = _best_fanout(runs["bare"], count)
        largest = count == max(sizes.clients)
        p99s = [f"{r.p99_ms:.0f}" for r in runs["gallerysync"] if r.clients == count]
        bare_p99s = [f"{r.p99_ms:.0f}" for r in runs["bare"] if r.clients == count]
        cpu_note = (
            f"server CPU per change {g.server_cpu_ms_per_change:.1f} ms (bare "
            f"{b.server_cpu_ms_per_change:.1f} ms); last client p50 {g.last_client_p50_ms:.1f} "
            f"ms (bare {b.last_client_p50_ms:.1f}); max {g.max_ms:.1f} ms (bare "
            f"{b.max_ms:.1f}); {g.publishes} changes x {g.clients} clients; p99 of each run "
            f"{', '.join(p99s)} ms (bare {', '.join(bare_p99s)})"
        )
        idle_runs = [
            (rg, rb)
            for rg, rb in zip(runs["gallerysync"], runs["bare"], strict=True)
            if rg.clients == count and rg.idle_cpu_percent is not None
        ]
        for rg, rb in idle_runs:
            results.lines.append(
                Line(
                    f"server CPU, {count:,} open streams, idle {IDLE_WINDOW:.0f} s",
                    rg.idle_cpu_percent,
                    "% of a core",
                    rb.idle_cpu_percent,
                    "bare Starlette SSE, same streams",
                    "info",
                    "no change published; a heartbeat period "
                    "(GALLERYSYNC_HEARTBEAT_SECONDS, 15) falls in the window",
                )
            )
        results.lines += [
            Line(
                f"SSE publish→receive p50, {g.clients:,} clients",
                g.p50_ms,
                "ms",
                b.p50_ms,
                "bare Starlette SSE, same client",
                "info",
                f"{len(event)}-byte events; the run with the best p99; publish request "
                f"answered in {g.request_p50_ms:.1f} ms (p50)",
            ),
            Line(
                f"SSE publish→receive p99, {g.clients:,} clients",
                g.p99_ms,
                "ms",
                b.p99_ms,
                "bare Starlette SSE, same client",
                "<= 2.00",
                cpu_note,
                bound=f"< {SSE_P99_BOUND_MS:.0f}" if largest else "",
            ),
        ]


def _best_fanout(runs: Sequence[FanoutRun], clients: int) -> FanoutRun:
    """The run with the lowest p99 (other processes on the machine only ever add delay)."""
    return min((r for r in runs if r.clients == clients), key=lambda r: r.p99_ms)


# --- 2. catch-up -----------------------------------------------------------------------------


def token_behind(home: Path, behind: int) -> tuple[str, int, int]:
    """A feed token `behind` changes before the head; and its sequence number and the head."""
    from gallerysync.catalog.feed import encode_token

    conn = sqlite3.connect(f"file:{home / 'catalog.sqlite3'}?mode=ro", uri=True)
    try:
        values = dict(conn.execute("SELECT key, value FROM instance").fetchall())
        head = int(conn.execute("SELECT seq FROM feed_head").fetchone()[0])
        row = conn.execute(
            "SELECT seq FROM changes ORDER BY seq DESC LIMIT 1 OFFSET ?", (behind - 1,)
        ).fetchone()
        since = int(row[0]) - 1
        after = conn.execute("SELECT count(*) FROM changes WHERE seq > ?", (since,)).fetchone()[0]
        if after != behind:
            raise RuntimeError(f"{after} changes after seq {since}, wanted {behind}")
    finally:
        conn.close()
    return encode_token(values["instance_id"], values["epoch"], since), since, head


def bare_select(home: Path, since: int) -> tuple[float, int]:
    """Seconds to read the change rows after `since` with their assets and origins."""
    conn = sqlite3.connect(f"file:{home / 'catalog.sqlite3'}?mode=ro", uri=True)
    try:
        started = time.perf_counter()
        rows = conn.execute(
            "SELECT c.*, a.*, o.source_id, o.remote_id, o.status FROM changes c "
            "LEFT JOIN assets a ON a.id = c.entity_id "
            "LEFT JOIN origins o ON o.asset_id = a.id WHERE c.seq > ? ORDER BY c.seq",
            (since,),
        ).fetchall()
        return time.perf_counter() - started, len(rows)
    finally:
        conn.close()


@dataclass
class CatchUp:
    seconds: float
    events: int  # `event: change`, counted as the bytes arrived
    hidden: int  # `id:`-only entries (changes the reader may not see), from the captured stream
    nbytes: int
    mean_event_bytes: float


async def catch_up(port: int, path: str) -> CatchUp:
    fanout = Fanout(1)
    with client_gc_paused():
        started = time.perf_counter()
        clients = await open_clients(port, path, 1, fanout, capture=True)
        try:
            await asyncio.wait_for(fanout.all_ready.wait(), READY_TIMEOUT)
        finally:
            close_clients(fanout, clients)
    client = clients[0]
    if fanout.errors or client.ready_at is None:
        raise RuntimeError(f"catch-up on {path}: {fanout.errors}")
    raw = b"".join(client.raw)
    events = change_events(raw)
    hidden = len(re.findall(rb"\nid: [^\n]*\n\n", raw))  # preceded by \r\n or \n\n
    mean = sum(map(len, events)) / max(1, len(events))
    return CatchUp(client.ready_at - started, len(client.times), hidden, client.nbytes, mean)


async def trash_and_restore(port: int, asset_id: str) -> None:
    """Two changes through the server itself: the head moves, so no cached page or read
    position of the server matches any more."""
    conn = await HttpConn.open(port)
    try:
        for method, suffix in (("DELETE", ""), ("POST", "/restore")):
            status, _ = await conn.request(method, f"/api/assets/{asset_id}{suffix}")
            if status != 200:
                raise RuntimeError(f"{method} /api/assets/{asset_id}{suffix} answered {status}")
    finally:
        conn.close()


async def bench_catch_up(
    results: Results,
    sanity: Sanity,
    sizes: LiveSizes,
    serve: Server,
    bare: Server,
    home: Path,
) -> None:
    from gallerysync.api.feed import STREAM_BATCH

    mark_load(results, "catch-up")
    behind = sizes.behind
    asset_id = first_asset_id(home)
    runs: list[CatchUp] = []
    positions: list[tuple[int, int]] = []
    for repeat in range(sizes.repeats):
        # Streams at one position share their reads: every cold run starts from a position no
        # stream has read (the head moved by two changes since the previous run).
        await trash_and_restore(serve.port, asset_id)
        token, since, head = token_behind(home, behind)
        positions.append((since, head))
        if repeat == 0:
            log(f"catch-up: {behind:,} changes behind (seq {since} -> head {head}) ...")
        runs.append(await catch_up(serve.port, f"/api/changes/stream?since={token}"))
    shared = await catch_up(serve.port, f"/api/changes/stream?since={token}")
    for r in [*runs, shared]:
        sanity.expect("catch-up: entries received (change + id-only)", r.events + r.hidden, behind)
    size = round(runs[0].mean_event_bytes)
    backlog = f"/backlog?n={behind}&size={size}&batch={STREAM_BATCH}"
    bare_runs = [await catch_up(bare.port, backlog) for _ in range(sizes.repeats)]
    for r in bare_runs:
        sanity.expect("bare catch-up: change events received", r.events, behind)
    selects = [bare_select(home, positions[-1][0]) for _ in range(sizes.repeats)]
    for _seconds, rows in selects:
        sanity.expect("bare SELECT: rows", rows, behind)
    best = min(r.seconds for r in runs)
    bare_best = min(r.seconds for r in bare_runs)
    select_best = min(s for s, _ in selects)
    log(
        f"  {best:.3f}s (bare SSE {bare_best:.3f}s, bare SELECT {select_best:.3f}s; a second "
        f"client at the same position {shared.seconds:.3f}s)"
    )
    results.raw["catch_up"] = {
        "behind": behind,
        "positions": positions,
        "gallerysync": [asdict(r) for r in runs],
        "gallerysync_same_position_again": asdict(shared),
        "bare_sse": [asdict(r) for r in bare_runs],
        "bare_select_seconds": [s for s, _ in selects],
        "mean_event_bytes": size,
        "bare_batch": STREAM_BATCH,
    }
    samples = ", ".join(f"{r.seconds:.3f}" for r in runs)
    results.lines += [
        Line(
            f"catch-up {behind:,} changes behind → up-to-date",
            best,
            "s",
            bare_best,
            f"bare SSE, {behind:,} events of {size} B, {STREAM_BATCH} per write",
            "info",
            f"runs {samples} s, each from a position no stream had read; {runs[0].events:,} "
            f"change events + {runs[0].hidden} id-only entries, {runs[0].nbytes / MB:.1f} MB; "
            f"{behind / best:,.0f} changes/s",
            bound=f"< {CATCH_UP_BOUND_S:.0f}",
        ),
        Line(
            f"catch-up {behind:,} behind, a second client at the same position",
            shared.seconds,
            "s",
            bare_best,
            f"bare SSE, {behind:,} events of {size} B, {STREAM_BATCH} per write",
            "info",
            "the pages the previous client read are shared (FeedFanout)",
        ),
        Line(
            f"catch-up {behind:,} changes behind, vs bare SELECT",
            best,
            "s",
            select_best,
            "sqlite3 SELECT of the same rows (changes ⋈ assets ⋈ origins)",
            "info",
            "context: the rows alone, without building or sending events",
        ),
    ]


# --- 3. GET /api/assets ----------------------------------------------------------------------


@dataclass
class LoadRun:
    requests: int
    seconds: float
    per_second: float
    p50_ms: float
    p99_ms: float
    server_cpu_ms_per_request: float
    bad: int


async def load(server: Server, path: str, connections: int, seconds: float, length: int) -> LoadRun:
    """`connections` keep-alive connections, each sending its next GET when the answer is in;
    1 s of warm-up, then `seconds` counted."""
    warmup = 1.0
    started = time.perf_counter()
    begin, end = started + warmup, started + warmup + seconds
    done: list[tuple[float, float]] = []
    bad = 0

    async def worker() -> None:
        nonlocal bad
        conn = await HttpConn.open(server.port)
        raw = conn.build("GET", path)
        try:
            while time.perf_counter() < end:
                t0 = time.perf_counter()
                status, body = await conn.send(raw)
                done.append((t0, time.perf_counter()))
                if status != 200 or len(body) != length:
                    bad += 1
        finally:
            conn.close()

    with client_gc_paused():
        workers = [asyncio.ensure_future(worker()) for _ in range(connections)]
        await asyncio.sleep(max(0.0, begin - time.perf_counter()))
        cpu0 = server.cpu_seconds()
        await asyncio.gather(*workers)
        cpu = server.cpu_seconds() - cpu0
    counted = [(t0, t1) for t0, t1 in done if begin <= t1 <= end]
    latencies = [t1 - t0 for t0, t1 in counted] or [math.nan]
    n = len(counted)
    after_begin = sum(1 for _t0, t1 in done if t1 >= begin)  # what the CPU time paid for
    return LoadRun(
        requests=n,
        seconds=seconds,
        per_second=n / seconds,
        p50_ms=percentile(latencies, 50) * 1000,
        p99_ms=percentile(latencies, 99) * 1000,
        server_cpu_ms_per_request=cpu / max(1, after_begin) * 1000,
        bad=bad,
    )


@dataclass
class SweepRun:
    pages: int
    seconds: float
    per_second: float
    first_pages_p50_ms: float  # the first tenth of the pages
    last_pages_p50_ms: float  # the last tenth: the deepest keyset pages
    server_cpu_ms_per_request: float
    bad: int


async def sweep(server: Server, paths: Sequence[str], connections: int) -> SweepRun:
    """Every path once, in order, over `connections` keep-alive connections."""
    conns = [await HttpConn.open(server.port) for _ in range(connections)]
    raws = [conns[0].build("GET", path) for path in paths]
    latencies = [math.nan] * len(paths)
    next_index = 0
    bad = 0

    async def worker(conn: HttpConn) -> None:
        nonlocal next_index, bad
        while next_index < len(raws):
            index = next_index
            next_index += 1
            t0 = time.perf_counter()
            status, body = await conn.send(raws[index])
            latencies[index] = time.perf_counter() - t0
            if status != 200 or not body.startswith(b'{"assets":['):
                bad += 1

    with client_gc_paused():
        cpu0 = server.cpu_seconds()
        started = time.perf_counter()
        try:
            await asyncio.gather(*(worker(conn) for conn in conns))
        finally:
            for conn in conns:
                conn.close()
        seconds = time.perf_counter() - started
        cpu = server.cpu_seconds() - cpu0
    tenth = max(1, len(paths) // 10)
    return SweepRun(
        pages=len(paths),
        seconds=seconds,
        per_second=len(paths) / seconds,
        first_pages_p50_ms=statistics.median(latencies[:tenth]) * 1000,
        last_pages_p50_ms=statistics.median(latencies[-tenth:]) * 1000,
        server_cpu_ms_per_request=cpu / len(paths) * 1000,
        bad=bad,
    )


NEXT = re.compile(rb'"next":(null|"([^"]*)")}$')


async def walk_pages(
    sanity: Sanity, server: Server, limit: int, assets: int
) -> tuple[list[tuple[str, bytes]], float, list[float]]:
    """Follow `next` from the first page to the last, one request at a time; the pages, the
    total seconds and each page's seconds."""
    conn = await HttpConn.open(server.port)
    pages: list[tuple[str, bytes]] = []
    each: list[float] = []
    started = time.perf_counter()
    with client_gc_paused():
        try:
            path: str | None = f"/api/assets?limit={limit}"
            while path is not None:
                t0 = time.perf_counter()
                status, body = await conn.request("GET", path)
                each.append(time.perf_counter() - t0)
                if status != 200:
                    sanity.fail(f"GET {path}: {status}")
                    break
                pages.append((path, body))
                found = NEXT.search(body[-300:])  # no JSON parsing inside the timed walk
                if found is None:
                    sanity.fail(f"GET {path}: no next cursor at the end of the body")
                    break
                cursor = found.group(2)
                path = f"/api/assets?limit={limit}&cursor={cursor.decode()}" if cursor else None
        finally:
            conn.close()
    seconds = time.perf_counter() - started
    shown = sum(len(json.loads(body)["assets"]) for _path, body in pages)
    sanity.expect("assets listed by following next to the end", shown, assets)
    return pages, seconds, each


async def bench_assets_list(
    results: Results, sanity: Sanity, sizes: LiveSizes, serve: Server, bare: Server, home: Path
) -> None:
    limit = sizes.list_limit
    conns = sizes.list_connections
    asset_id = first_asset_id(home)
    mark_load(results, "assets list")
    log(f"GET /api/assets?limit={limit}: following next through {sizes.assets:,} assets ...")
    await trash_and_restore(serve.port, asset_id)  # no page cached at this head
    pages, walk_seconds, walk_each = await walk_pages(sanity, serve, limit, sizes.assets)
    log(f"  {len(pages)} pages in {walk_seconds:.2f}s")
    upload = await HttpConn.open(bare.port)
    try:
        for index, (_path, body) in enumerate(pages):
            headers = "Content-Type: application/json\r\n"
            status, _ = await upload.request("PUT", f"/files/page{index}.json", body, headers)
            sanity.expect("bare: store a page", status, 200)
    finally:
        upload.close()
    bare_paths = [f"/files/page{index}.json" for index in range(len(pages))]
    bare_walk = await sweep(bare, bare_paths, 1)
    raw: dict[str, Any] = {
        "pages": len(pages),
        "walk_seconds": walk_seconds,
        "walk_page_ms": [round(x * 1000, 2) for x in walk_each],
        "bare_walk": asdict(bare_walk),
    }

    # The same page again and again: served from the head-keyed page cache after the first.
    deep = min(sizes.deep_pages, len(pages)) - 1
    for label, index in (("first page", 0), (f"page {deep + 1} (keyset)", deep)):
        path, body = pages[index]
        log(
            f"GET /api/assets?limit={limit}, {label} repeated: {sizes.repeats} x "
            f"{sizes.list_seconds:.0f}s each ..."
        )
        g_runs: list[LoadRun] = []
        b_runs: list[LoadRun] = []
        for _ in range(sizes.repeats):
            g_runs.append(await load(serve, path, conns, sizes.list_seconds, len(body)))
            b_runs.append(await load(bare, bare_paths[index], conns, sizes.list_seconds, len(body)))
        for r in g_runs:
            sanity.expect(f"{label}: bad answers (gallerysync)", r.bad, 0)
        for r in b_runs:
            sanity.expect(f"{label}: bad answers (bare)", r.bad, 0)
        g = max(g_runs, key=lambda r: r.per_second)
        b = max(b_runs, key=lambda r: r.per_second)
        log(f"  {g.per_second:.1f} req/s (bare {b.per_second:.1f} req/s)")
        raw[label] = {
            "path": path,
            "bytes": len(body),
            "gallerysync": [asdict(r) for r in g_runs],
            "bare": [asdict(r) for r in b_runs],
        }
        results.lines.append(
            Line(
                f"GET /api/assets?limit={limit}, {label}, repeated, {sizes.assets:,} assets",
                g.per_second,
                "req/s",
                b.per_second,
                "bare Starlette, same bytes from memory",
                ">= 0.50",
                f"{conns} keep-alive connections, best of {sizes.repeats} x "
                f"{sizes.list_seconds:.0f} s (runs "
                f"{', '.join(f'{r.per_second:.0f}' for r in g_runs)} req/s); "
                f"{len(body) / 1000:.0f} kB; latency p50 {g.p50_ms:.1f} ms, p99 {g.p99_ms:.1f} ms "
                f"(bare {b.p50_ms:.1f}, {b.p99_ms:.1f}); server CPU per request "
                f"{g.server_cpu_ms_per_request:.1f} ms (bare {b.server_cpu_ms_per_request:.2f}); "
                "all but the first answer come from the page cache (same head)",
            )
        )

    # Every page once, right after a change: nothing cached, every page read and rendered.
    log(f"GET /api/assets?limit={limit}, all {len(pages)} pages once after a change ...")
    paths = [path for path, _body in pages]
    g_sweeps: list[SweepRun] = []
    b_sweeps: list[SweepRun] = []
    for _ in range(sizes.repeats):
        await trash_and_restore(serve.port, asset_id)
        g_sweeps.append(await sweep(serve, paths, conns))
        b_sweeps.append(await sweep(bare, bare_paths, conns))
    for r in g_sweeps:
        sanity.expect("all pages: bad answers (gallerysync)", r.bad, 0)
    for r in b_sweeps:
        sanity.expect("all pages: bad answers (bare)", r.bad, 0)
    g_sweep = max(g_sweeps, key=lambda r: r.per_second)
    b_sweep = max(b_sweeps, key=lambda r: r.per_second)
    log(f"  {g_sweep.per_second:.1f} req/s (bare {b_sweep.per_second:.1f} req/s)")
    raw["all pages after a change"] = {
        "gallerysync": [asdict(r) for r in g_sweeps],
        "bare": [asdict(r) for r in b_sweeps],
    }
    results.raw["assets_list"] = raw
    tenth = max(1, len(pages) // 10)
    results.lines += [
        Line(
            f"GET /api/assets?limit={limit}, all {len(pages)} pages once after a change, "
            f"{sizes.assets:,} assets",
            g_sweep.per_second,
            "req/s",
            b_sweep.per_second,
            "bare Starlette, same bytes from memory",
            ">= 0.50",
            f"{conns} keep-alive connections, every page read from the catalog (the head moved "
            f"just before), best of {sizes.repeats} (runs "
            f"{', '.join(f'{r.per_second:.0f}' for r in g_sweeps)} req/s); latency p50 of the "
            f"first {tenth} pages {g_sweep.first_pages_p50_ms:.1f} ms, of the last {tenth} "
            f"(deepest) {g_sweep.last_pages_p50_ms:.1f} ms (bare "
            f"{b_sweep.first_pages_p50_ms:.1f}, {b_sweep.last_pages_p50_ms:.1f}); server CPU "
            f"per request {g_sweep.server_cpu_ms_per_request:.1f} ms",
        ),
        Line(
            f"GET /api/assets?limit={limit}, follow next through {sizes.assets:,} assets",
            walk_seconds,
            "s",
            bare_walk.seconds,
            f"bare Starlette, the same {len(pages)} bodies",
            "info",
            "one connection, one request at a time, right after a change (a client scrolling "
            f"to the end); page latency p50 of the first {tenth} pages "
            f"{statistics.median(walk_each[:tenth]) * 1000:.1f} ms, of the last {tenth} "
            f"{statistics.median(walk_each[-tenth:]) * 1000:.1f} ms, last page "
            f"{walk_each[-1] * 1000:.1f} ms",
        ),
    ]


# --- 4. first thumbnail painted --------------------------------------------------------------

PAINT_PROBE = """
(() => {
  const probe = {};
  window.__gsProbe = probe;
  const painted = (img) => img.complete && img.naturalWidth > 0 && img.closest('#grid');
  const found = (img, how) => {
    if (probe.loaded !== undefined) return;
    probe.loaded = performance.now();
    probe.how = how;
    probe.src = img.currentSrc || img.src;
    probe.naturalWidth = img.naturalWidth;
    requestAnimationFrame(() => {
      probe.frame = performance.now();
      requestAnimationFrame(() => {
        probe.nextFrame = performance.now();
        window.__gsFirstPaint = probe;
      });
    });
  };
  document.addEventListener('load', (event) => {
    const el = event.target;
    if (el instanceof HTMLImageElement && painted(el)) found(el, 'load');
  }, true);
  const poll = () => {
    if (probe.loaded !== undefined) return;
    for (const img of document.querySelectorAll('#grid img')) {
      if (painted(img)) { found(img, 'frame'); return; }
    }
    requestAnimationFrame(poll);
  };
  requestAnimationFrame(poll);
  try {
    new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) {
        const el = entry.element;
        if (probe.lcp === undefined && el && el.tagName === 'IMG' && el.closest('#grid')) {
          probe.lcp = entry.renderTime || entry.loadTime;
        }
      }
    }).observe({type: 'largest-contentful-paint', buffered: true});
  } catch (e) {}
})();
"""

PAGE_STATE = """() => ({
  grid: !!document.querySelector('#grid'),
  tiles: document.querySelectorAll('#grid [data-asset-id]').length,
  imgs: document.querySelectorAll('#grid img').length,
  complete: [...document.querySelectorAll('#grid img')].filter(
    (i) => i.complete && i.naturalWidth > 0).length,
  title: document.title,
  text: (document.body ? document.body.innerText : '').slice(0, 120),
})"""

BARE_PAGE = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>bare</title></head>'
    '<body><div id="grid"><div data-asset-id="bare"><img src="/files/thumb.webp" alt="">'
    "</div></div></body></html>"
)


@dataclass
class Paint:
    url: str
    frame_ms: float | None
    detail: dict[str, Any]


async def first_paint(browser: Any, url: str) -> Paint:
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.add_init_script(PAINT_PROBE)
        await page.goto(url, wait_until="commit")
        try:
            await page.wait_for_function(
                "window.__gsFirstPaint !== undefined", timeout=PAINT_TIMEOUT_MS
            )
        except PlaywrightTimeout:  # report what the page had instead
            state = await page.evaluate(PAGE_STATE)
            return Paint(url, None, {"state": state, "page_errors": errors[:5]})
        probe = await page.evaluate("window.__gsFirstPaint")
        state = await page.evaluate(PAGE_STATE)
        return Paint(url, float(probe["frame"]), {**probe, "state": state, "page_errors": errors})
    finally:
        await context.close()


def _not_measured(paint: Paint) -> str:
    state = paint.detail.get("state", {})
    if not state.get("grid"):
        why = "the page has no #grid"
    elif not state.get("imgs"):
        why = f"#grid has {state.get('tiles')} tiles but no <img>"
    else:
        why = f"no #grid image completed ({state.get('imgs')} <img>)"
    return f"not measured: {why} within {PAINT_TIMEOUT_MS / 1000:.0f} s (page: {state})"


def _paint_text(paint: Paint) -> str:
    if paint.frame_ms is None:
        return _not_measured(paint)
    return f"{paint.frame_ms:.0f} ms ({paint.detail.get('how')}, {paint.detail.get('src')})"


def _paint_line(name: str, paints: list[Paint], bare: list[Paint]) -> Line:
    measured = [p.frame_ms for p in paints if p.frame_ms is not None]
    bare_ms = [p.frame_ms for p in bare if p.frame_ms is not None]
    if not measured:
        figure, note = None, _not_measured(paints[-1])
    else:
        best = min(paints, key=min_paint_key)
        lcp = best.detail.get("lcp")
        figure = best.frame_ms
        note = (
            f"runs {', '.join(f'{m:.0f}' for m in measured)} ms; image loaded at "
            f"{best.detail['loaded']:.0f} ms, next frame {best.detail['nextFrame']:.0f} ms, "
            f"LCP render {'-' if lcp is None else f'{lcp:.0f}'} ms; "
            f"{best.detail['state']['tiles']} tiles, {best.detail['state']['imgs']} <img>"
        )
    return Line(
        name,
        figure,
        "ms",
        min(bare_ms) if bare_ms else None,
        "bare page, one <img> of a same-size WebP",
        "info",
        note,
        bound=f"< {PAINT_BOUND_MS:.0f}",
    )


def min_paint_key(paint: Paint) -> float:
    return paint.frame_ms if paint.frame_ms is not None else math.inf


# --- the suite -------------------------------------------------------------------------------


async def bench_assets(
    results: Results, sanity: Sanity, sizes: LiveSizes, base_home: Path, homes: Path, tree: Path
) -> None:
    from playwright.async_api import async_playwright

    from gallerysync.blobs.thumbnails import make_thumbnail

    with open(run.media_files(tree, ".png")[0], "rb") as handle:
        thumb = make_thumbnail(handle)
    bare = Server.bare(homes / "bare-assets.log")
    serve: Server | None = None
    try:
        await bare.wait_ready("/health", lambda _body: True)
        conn = await HttpConn.open(bare.port)
        try:
            for name, body, kind in (
                ("thumb.webp", thumb, "image/webp"),
                ("paint.html", BARE_PAGE.encode(), "text/html; charset=utf-8"),
            ):
                status, _ = await conn.request(
                    "PUT", f"/files/{name}", body, f"Content-Type: {kind}\r\n"
                )
                sanity.expect(f"bare: store {name}", status, 200)
        finally:
            conn.close()
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                # Cold: each repeat on a fresh copy of the catalog and a fresh serve; the last
                # serve stays up for the warm figure and the other phases.
                mark_load(results, "first paint")
                cold: list[Paint] = []
                home = base_home
                for attempt in range(sizes.repeats):
                    if serve is not None:
                        serve.stop()
                    home = copy_home(base_home, homes / f"live-assets-{attempt}")
                    serve = Server.gallerysync(home, homes / f"serve-assets-{attempt}.log")
                    await serve.wait_serve_ready()
                    log(f"first paint, cold ({attempt + 1}/{sizes.repeats}) ...")
                    cold.append(await first_paint(browser, serve.url + "/"))
                    log(f"  {_paint_text(cold[-1])}")
                    if cold[-1].frame_ms is None:
                        break  # not measurable: more repeats would only wait again
                assert serve is not None
                warm: list[Paint] = []
                for attempt in range(sizes.repeats if cold[-1].frame_ms is not None else 1):
                    log(f"first paint, warm ({attempt + 1}) ...")
                    warm.append(await first_paint(browser, serve.url + "/"))
                    log(f"  {_paint_text(warm[-1])}")
                bare_paints = []
                for _ in range(sizes.repeats):
                    bare_paints.append(await first_paint(browser, bare.url + "/files/paint.html"))
                log(f"first paint, bare page: {_paint_text(min(bare_paints, key=min_paint_key))}")
            finally:
                await browser.close()
        if all(p.frame_ms is None for p in bare_paints):
            sanity.fail(f"bare page: {_not_measured(bare_paints[0])}")
        results.raw["paint"] = {
            "cold": [asdict(p) for p in cold],
            "warm": [asdict(p) for p in warm],
            "bare": [asdict(p) for p in bare_paints],
            "thumb_bytes": len(thumb),
        }
        results.lines += [
            _paint_line(
                f"first thumbnail painted, cold, {sizes.assets:,} assets", cold, bare_paints
            ),
            _paint_line(
                f"first thumbnail painted, warm, {sizes.assets:,} assets", warm, bare_paints
            ),
        ]
        await bench_catch_up(results, sanity, sizes, serve, bare, home)
        await bench_assets_list(results, sanity, sizes, serve, bare, home)
        serve.check_alive()
    finally:
        if serve is not None:
            serve.stop()
            problems = serve.log_problems()
            sanity.expect("assets serve: error lines in the log", problems[:5], [])
        bare.stop()
        sanity.expect("bare app: error lines in the log", bare.log_problems()[:5], [])


def markdown(results: Results, command: str, seconds: float) -> str:
    p = results.params
    env = results.environment
    rows = run.table_rows(results.lines)
    md = [
        f"# gallerysync live benchmark — {p['started']}",
        "",
        f"Command: `{command}`  ",
        f"Mode: {'quick (1/10 sizes)' if p['quick'] else 'full'}; {p['assets']:,} assets; SSE "
        f"with {' and '.join(f'{c:,}' for c in p['clients'])} clients, {p['publishes']} changes "
        f"each; catch-up {p['behind']:,} changes behind; best of {p['repeats']} where repeated. "
        f"Suite run time {seconds:.0f} s.",
        "",
        "| " + " | ".join(run.HEADER) + " |",
        "|" + "|".join("---" for _ in run.HEADER) + "|",
        *("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows),
        "",
        "Notes per line:",
        "",
        *(f"- {line.name}: {line.note}" for line in results.lines if line.note),
        "",
        f"Environment: Python {env['python']}, {env['cpus']} CPUs, {env['platform']}, "
        f"gallerysync {env['gallerysync']} at {env['git_commit']}"
        f"{' (dirty tree)' if env['git_dirty'] else ''}; uvicorn {env['uvicorn']} "
        f"({env['uvicorn_impl']}); Chromium {env.get('chromium', '?')}; load average (1, 5, "
        f"15 min) {env['load_average_at_start']} at start, {env['load_average_at_end']} at the "
        "end (other processes on the machine make the figures noisier).",
        "",
        "Servers are real processes on loopback; `serve` runs with `GALLERYSYNC_JOB_WORKERS=0` "
        "(thumbnails only on request). The client (raw HTTP/1.1 over asyncio, one process) is "
        "the same for gallerysync and the bare limits. Method: see `bench/live.py`.",
    ]
    if results.warnings:
        md += ["", "Warnings:", "", *(f"- {w}" for w in results.warnings)]
    return "\n".join(md) + "\n"


def live_environment() -> dict[str, Any]:
    import importlib.util

    import uvicorn

    env = run.environment()
    env["uvicorn"] = uvicorn.__version__
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    env["uvicorn_impl"] = f"loop {loop}, http {http}"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        env["chromium"] = subprocess.run(
            [CHROMIUM, "--version"], capture_output=True, text=True, timeout=30
        ).stdout.strip()
    return env


async def _suite(
    results: Results, sanity: Sanity, sizes: LiveSizes, data: Path, homes: Path, quick: bool
) -> None:
    tree = data / ("small-quick" if quick else "small")
    run.ensure_small(tree, run.QUICK if quick else run.FULL)
    base_home = ensure_assets_home(data, tree, sizes.assets)
    await bench_sse(results, sanity, sizes, data, homes)
    await bench_assets(results, sanity, sizes, base_home, homes, tree)


def live_suite(quick: bool, data: Path, keep_homes: bool, command: str) -> int:
    """Run the live benchmark; returns 1 when a sanity check failed."""
    sizes = QUICK if quick else FULL
    started = datetime.now()
    stamp = started.strftime("%Y%m%d-%H%M%S")
    clock = time.perf_counter()
    busy = os.getloadavg()[0]
    if busy > 0.5:
        log(f"note: load average {busy:.2f} before starting; other processes may skew figures")
    raise_nofile(2 * max(sizes.clients) + 256)
    results = Results(
        params={
            "started": started.isoformat(timespec="seconds"),
            "quick": quick,
            "data": str(data),
            **asdict(sizes),
            "serve_env": SERVE_ENV,
        },
        environment=live_environment(),
    )
    sanity = Sanity(results)
    homes = data / "homes" / f"live-{stamp}"
    homes.mkdir(parents=True)
    try:
        asyncio.run(_suite(results, sanity, sizes, data, homes, quick))
    finally:
        if not keep_homes:
            shutil.rmtree(homes, ignore_errors=True)
    seconds = time.perf_counter() - clock
    for line in results.lines:
        line.judge()
    results.environment["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results.params["suite_seconds"] = round(seconds, 1)

    print(run.text_table(results.lines))
    for warning in results.warnings:
        print(f"WARNING: {warning}")
    run.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    name = f"live-{stamp}{'-quick' if quick else ''}"
    payload = {
        "command": command,
        "params": results.params,
        "environment": results.environment,
        "lines": [asdict(line) for line in results.lines],
        "warnings": results.warnings,
        "raw": results.raw,
    }
    (run.RESULTS_DIR / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    summary = markdown(results, command, seconds)
    (run.RESULTS_DIR / f"{name}.md").write_text(summary)
    run.write_latest("live", summary)
    log(f"live suite took {seconds:.0f}s; results: {run.RESULTS_DIR / name}.json, .md, latest.md")
    return 1 if results.warnings else 0


if __name__ == "__main__":
    if sys.argv[1:2] == [BARE_SERVER]:
        sys.exit(bare_server_main(sys.argv[2:]))
    sys.exit(run.main(["--suite", "live", *sys.argv[1:]]))
