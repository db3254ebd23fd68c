"""The bench's handle on a Stash double process (`double_main.py`)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from stash.sizes import StashSizes

MAIN = Path(__file__).resolve().with_name("double_main.py")


class DoubleProcess:
    def __init__(self, sizes: StashSizes, log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, str(MAIN), json.dumps(dataclasses.asdict(sizes))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        hello = self._read()
        self.url: str = hello["url"]
        self.pid: int = hello["pid"]
        self.api_key: str = hello["api_key"]

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait(30)
            raise RuntimeError(f"the Stash double exited {code}: {self.log_text()[-4000:]}")
        body: dict[str, Any] = json.loads(line)
        if "error" in body:
            raise RuntimeError(f"the Stash double: {body['error']}")
        return body

    def call(self, op: str, **args: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def graphql_requests(self) -> int:
        return int(self.call("stats")["graphql_requests"])

    def cpu_seconds(self) -> float:
        """User + system CPU time of the double, all threads (from /proc/PID/stat)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> int:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError, RuntimeError, ValueError):
                self.call("quit")
        try:
            code = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(30)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()
        self._log.close()
        return code

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tracebacks(self) -> list[str]:
        return [line for line in self.log_text().splitlines() if "Traceback" in line]
