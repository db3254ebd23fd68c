"""A bench helper process spoken to in JSON lines: requests on its stdin, one reply per line on
its stdout, its stderr in a log file. The doubles of the remote and stash suites run this way,
in processes of their own, so their CPU does not compete with the measured sync for the GIL."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any


class JsonLineChild:
    """Start `argv`; its first line is a hello with at least `url` and `pid`."""

    name = "child"  # in error messages

    def __init__(self, argv: list[str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True
        )
        self.hello = self._read()
        self.url: str = self.hello["url"]
        self.pid: int = self.hello["pid"]

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait(30)
            raise RuntimeError(f"the {self.name} exited {code}: {self.log_text()[-4000:]}")
        body: dict[str, Any] = json.loads(line)
        if "error" in body:
            raise RuntimeError(f"the {self.name}: {body['error']}")
        return body

    def call(self, op: str, **args: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def cpu_seconds(self) -> float:
        """User + system CPU time of the child, all threads (from /proc/PID/stat)."""
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
