"""The servers under test, as processes on loopback ports: `gallerysync serve` and the bare app."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import run
from live.client import HOST, READY_TIMEOUT, HttpConn
from run import log

PROBLEM = re.compile(r"\b(ERROR|CRITICAL)\b|Traceback")
BARE_SCRIPT = Path(__file__).resolve().with_name("bare.py")
# Pinned for every gallerysync process of the bench, whatever the caller's environment says:
# the catalog is the home's SQLite file, auth is off (loopback), heartbeats are the default.
GALLERYSYNC_ENV = {
    "GALLERYSYNC_DATABASE_URL": "",
    "GALLERYSYNC_AUTH": "off",
    "GALLERYSYNC_HEARTBEAT_SECONDS": "15",
}
SERVE_ENV = {**GALLERYSYNC_ENV, "GALLERYSYNC_JOB_WORKERS": "0"}


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
        cmd = [sys.executable, str(BARE_SCRIPT), HOST, str(free_port())]
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
