"""An unreadable file is recorded with its error and retried — run as an unprivileged user.

Root reads everything, so when the suite runs as root the CLI is run as `nobody` through
`setpriv` on a tree made for it; otherwise as the current user.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import write_image

NOBODY = 65534


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="gs-unreadable-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "gallerysync", "--home", str(home), *args]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: cannot make a file unreadable")
        command = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *command]
    env = {k: v for k, v in os.environ.items() if k != "GALLERYSYNC_HOME"}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=True)


def test_unreadable_file_is_recorded_then_registered_when_readable(shared_tmp: Path) -> None:
    root, home = shared_tmp / "pics", shared_tmp / "home"
    write_image(root / "ok.jpg", 1)
    write_image(root / "locked.jpg", 2)
    home.mkdir()
    if os.geteuid() == 0:
        for path in (root, home, root / "ok.jpg"):
            os.chown(path, NOBODY, NOBODY)
    (root / "locked.jpg").chmod(0o000)

    _cli(home, "source", "add", "folder", str(root))
    (report,) = json.loads(_cli(home, "sync", "--json").stdout)
    assert (report["added"], report["errors"]) == (1, 1)
    inspect = json.loads(_cli(home, "inspect", "--json").stdout)
    (error,) = inspect["storage_dirs"][0]["errors"]
    assert error["path"] == "locked.jpg" and "Permission denied" in error["error"]

    (root / "locked.jpg").chmod(0o644)
    (report,) = json.loads(_cli(home, "sync", "--json").stdout)
    assert (report["added"], report["errors"], report["unchanged"]) == (1, 0, 1)
