"""Test helpers: make real image files, wait on conditions, run the CLI as a subprocess."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from PIL import Image

T = TypeVar("T")
GALLERYSYNC = [sys.executable, "-m", "gallerysync"]


def image_bytes(seed: int, fmt: str = "JPEG", size: tuple[int, int] = (32, 24)) -> bytes:
    """A small, valid image whose bytes are unique per `seed`."""
    image = Image.new("RGB", size, ((seed * 37) % 256, (seed * 91) % 256, (seed // 256) % 256))
    image.putpixel((0, 0), (seed % 256, (seed >> 8) % 256, (seed >> 16) % 256))
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def write_image(path: Path, seed: int, fmt: str | None = None) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    ext = path.suffix.lower().lstrip(".")
    fmt = fmt or {
        "jpg": "JPEG",
        "jpeg": "JPEG",
        "png": "PNG",
        "gif": "GIF",
        "webp": "WEBP",
        "tif": "TIFF",
        "tiff": "TIFF",
    }.get(ext, "PNG")
    data = image_bytes(seed, fmt)
    path.write_bytes(data)
    return data


def wait_for(
    predicate: Callable[[], T | None], timeout: float = 20.0, what: str = "condition"
) -> T:
    """Poll `predicate` until it returns a truthy value; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def run_cli(
    home: Path, *args: str, check: bool = True, env: dict[str, str] | None = None, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    result = subprocess.run(
        [*GALLERYSYNC, "--home", str(home), *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=300,
        **kwargs,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"gallerysync {' '.join(args)} exited {result.returncode}\n"
            f"stdout: {result.stdout}\nstderr: {result.stderr}"
        )
    return result


def cli_json(home: Path, *args: str, **kwargs: Any) -> Any:
    return json.loads(run_cli(home, *args, "--json", **kwargs).stdout)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServeProcess:
    """A real `gallerysync serve` subprocess on a free loopback port."""

    def __init__(
        self, home: Path, env: dict[str, str] | None = None, port: int | None = None
    ) -> None:
        self.port = port or free_port()
        self.home = home
        self.log = home.parent / f"serve-{self.port}.log"
        home.mkdir(parents=True, exist_ok=True)
        self._log_handle = open(self.log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [*GALLERYSYNC, "--home", str(home), "serve", "--port", str(self.port)],
            env={**os.environ, **(env or {})},
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def health(self) -> dict[str, Any] | None:
        import httpx

        if self.proc.poll() is not None:
            raise AssertionError(f"serve exited {self.proc.returncode}: {self.log.read_text()}")
        try:
            response = httpx.get(self.url + "/healthz", timeout=2)
        except httpx.TransportError:
            return None
        result: dict[str, Any] = response.json()
        return result

    def wait_healthy(self, timeout: float = 30) -> dict[str, Any]:
        return wait_for(self.health, timeout, "serve /healthz")

    def stop(self, sig: int = 15, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        finally:
            self._log_handle.close()
        return code

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(30)
        self._log_handle.close()


def start_sync(home: Path, batch_size: int, **popen: Any) -> subprocess.Popen[str]:
    """`gallerysync sync --json` as a subprocess, in small batches on one hashing thread, so
    a test can catch it half-way."""
    env = {
        **os.environ,
        "GALLERYSYNC_SCAN_BATCH_SIZE": str(batch_size),
        "GALLERYSYNC_HASH_WORKERS": "1",
    }
    return subprocess.Popen(
        [*GALLERYSYNC, "--home", str(home), "sync", "--json"], env=env, text=True, **popen
    )


def freeze_mid_scan(proc: subprocess.Popen[str], home: Path, at_least: int) -> int:
    """Wait until the scan has committed `at_least` assets, then SIGSTOP it (frozen wherever
    it is: mid-hash or mid-commit). Returns the assets committed at that moment."""
    import signal
    import sqlite3

    raw = sqlite3.connect(home / "catalog.sqlite3", timeout=60, isolation_level=None)
    try:
        count = lambda: raw.execute("SELECT count(*) FROM assets").fetchone()[0]  # noqa: E731
        wait_for(lambda: count() >= at_least, 60, "the scan to be under way")
        proc.send_signal(signal.SIGSTOP)
        return int(count())
    finally:
        raw.close()
