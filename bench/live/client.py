"""The one lean client of every figure: raw HTTP/1.1 over asyncio, SSE protocols that only
timestamp and count, and what the client measures about itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import re
import resource
import time
from collections.abc import Iterator, Sequence

import run
from run import Results, expect

HOST = "127.0.0.1"
CONNECT_BATCH = 100
READY_TIMEOUT = 120.0
EVENT_TIMEOUT = 60.0


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


async def toggle_trash(conn: HttpConn, asset_id: str, k: int) -> int:
    """Change `k` published through the server itself: trash the asset (even `k`) or restore
    it (odd `k`); each commit produces one change. Returns the HTTP status."""
    if k % 2 == 0:
        return (await conn.request("DELETE", f"/api/assets/{asset_id}"))[0]
    return (await conn.request("POST", f"/api/assets/{asset_id}/restore"))[0]


async def trash_and_restore(port: int, asset_id: str) -> None:
    """Two changes through the server itself: the head moves, so no cached page or read
    position of the server matches any more."""
    conn = await HttpConn.open(port)
    try:
        for k in range(2):
            status = await toggle_trash(conn, asset_id, k)
            if status != 200:
                raise RuntimeError(f"trash/restore {k} of asset {asset_id} answered {status}")
    finally:
        conn.close()


async def put_files(results: Results, port: int, files: Sequence[tuple[str, bytes, str]]) -> None:
    """Store (name, body, content type) in the bare app's memory, for `GET /files/NAME`."""
    conn = await HttpConn.open(port)
    try:
        for name, body, kind in files:
            headers = f"Content-Type: {kind}\r\n"
            status, _ = await conn.request("PUT", f"/files/{name}", body, headers)
            expect(results, f"bare: store {name}", status, 200)
    finally:
        conn.close()


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
    results.raw.setdefault("load_average", {})[phase] = run.load_average()


def client_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
