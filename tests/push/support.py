"""Push tests: a real server subprocess, the real client as a subprocess, and a TCP proxy.

The proxy sits between client and server on loopback and counts the bytes the client sends —
an independent count of "no bytes sent", not the client's own word — and can damage the body
of the next upload in flight, which the server must refuse.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import random
import socket
import sqlite3
import subprocess
import threading
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from gallerysync.push.client import queue_path_for
from tests.helpers import GALLERYSYNC, ServeProcess, run_cli, wait_for

CLIENT_ENV = {"GALLERYSYNC_SETTLE_SECONDS": "0.2", "GALLERYSYNC_RETRY_BASE_SECONDS": "0.05"}


def noise_png(seed: int, side: int = 96) -> bytes:
    """A valid PNG of random pixels (~`side`² × 3 bytes: it does not compress)."""
    rng = random.Random(seed)
    image = Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def server_assets(url: str, **params: str) -> list[dict[str, Any]]:
    """Every asset the (auth-off) server shows its local owner, following `next`."""
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {"limit": "500", **params, **({"cursor": cursor} if cursor else {})}
        page = httpx.get(url + "/api/assets", params=query, timeout=30).json()
        found.extend(page["assets"])
        cursor = page["next"]
        if not cursor:
            return found


def push_once(home: Path, folder: Path, url: str, *extra: str, check: bool = True) -> Any:
    """`push FOLDER --to URL --once --json`; returns (exit code, final queue status)."""
    result = run_cli(
        home,
        "push",
        str(folder),
        "--to",
        url,
        "--once",
        "--json",
        *extra,
        check=check,
        env=CLIENT_ENV,
    )
    return result.returncode, json.loads(result.stdout)


def start_push(home: Path, folder: Path, url: str, *extra: str) -> subprocess.Popen[str]:
    """The client in the background (watching, or `--once` among `extra`)."""
    return subprocess.Popen(
        [*GALLERYSYNC, "--home", str(home), "push", str(folder), "--to", url, "--json", *extra],
        env={**os.environ, **CLIENT_ENV},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def push_status(home: Path, folder: Path) -> Any:
    return json.loads(run_cli(home, "push", str(folder), "--status", "--json").stdout)


def queue_rows(home: Path, folder: Path) -> list[tuple[str, str]]:
    """`(rel_path, state)` straight from the client's queue file (read while it runs)."""
    path = queue_path_for(home, folder)
    if not path.exists():
        return []
    db = sqlite3.connect(path, timeout=30)
    try:
        return [(r[0], r[1]) for r in db.execute("SELECT rel_path, state FROM files")]
    except sqlite3.OperationalError:  # the schema is not there yet
        return []
    finally:
        db.close()


def queue_errors(home: Path, folder: Path) -> list[str]:
    """The errors pending files carry now (why they wait), from the queue file."""
    path = queue_path_for(home, folder)
    if not path.exists():
        return []
    db = sqlite3.connect(path, timeout=30)
    try:
        rows = db.execute(
            "SELECT last_error FROM files WHERE last_error IS NOT NULL AND state != 'done'"
        )
        return [r[0] for r in rows]
    except sqlite3.OperationalError:
        return []
    finally:
        db.close()


def done_count(home: Path, folder: Path) -> int:
    return sum(1 for _, state in queue_rows(home, folder) if state == "done")


class Server:
    """A `gallerysync serve` that can be stopped and started again on the same port."""

    def __init__(self, home: Path, env: dict[str, str] | None = None) -> None:
        self.home = home
        self.env = env or {}
        self.port = _free_port()
        self.process: ServeProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Server:
        self.process = ServeProcess(self.home, env=self.env, port=self.port)
        self.process.wait_healthy()
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process = None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Proxy:
    """A loopback TCP proxy in a thread: counts client→server bytes; `corrupt_next_upload()`
    flips one byte of the next `POST /api/assets` body that passes through."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = _free_port()
        self.upstream_bytes = 0
        self.corrupted = 0
        self._corrupt_pending = False
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def corrupt_next_upload(self) -> None:
        self._corrupt_pending = True

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", self.port)
        )
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return

        async def upstream() -> None:
            seen = bytearray()  # this connection's bytes, to find an upload's body
            body_at: int | None = None
            try:
                while chunk := await reader.read(65536):
                    start = len(seen)
                    seen += chunk
                    self.upstream_bytes += len(chunk)
                    if self._corrupt_pending and body_at is None:
                        head = seen.find(b"POST /api/assets HTTP/1.1")
                        end = seen.find(b"\r\n\r\n", head) if head >= 0 else -1
                        if end >= 0:
                            body_at = end + 4
                    if (
                        body_at is not None
                        and self._corrupt_pending
                        and start <= body_at < len(seen)
                    ):
                        data = bytearray(chunk)
                        data[body_at - start] ^= 0xFF  # the body's first byte
                        chunk = bytes(data)
                        self._corrupt_pending = False
                        self.corrupted += 1
                    up_writer.write(chunk)
                    await up_writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                up_writer.close()

        async def downstream() -> None:
            try:
                while chunk := await up_reader.read(65536):
                    writer.write(chunk)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                writer.close()

        await asyncio.gather(upstream(), downstream())


__all__ = [
    "CLIENT_ENV",
    "Proxy",
    "Server",
    "done_count",
    "noise_png",
    "push_once",
    "push_status",
    "queue_errors",
    "queue_rows",
    "server_assets",
    "start_push",
    "wait_for",
]
