"""Two commands on one home at once, and SIGTERM during a scan: nothing is corrupted."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from tests.helpers import (
    GALLERYSYNC,
    cli_json,
    freeze_mid_scan,
    run_cli,
    start_sync,
    write_image,
)


def test_two_syncs_at_once_agree(tmp_path: Path) -> None:
    home = tmp_path / "home"
    roots = [tmp_path / "a", tmp_path / "b"]
    for n, root in enumerate(roots):
        for i in range(300):
            write_image(root / f"{i}.png", n * 1000 + i)
        run_cli(home, "source", "add", "folder", str(root))
    procs = [
        subprocess.Popen(
            [*GALLERYSYNC, "--home", str(home), "sync", "--json", *names],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for names in (["a", "b"], ["b", "a"])
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    report = cli_json(home, "inspect")
    assert [
        (sd["registered"], sd["unregistered"], sd["missing"]) for sd in report["storage_dirs"]
    ] == [(300, 0, 0), (300, 0, 0)]
    assert report["assets"] == {"present": 600}


def test_sigterm_stops_a_scan_after_its_batch(tmp_path: Path) -> None:
    home, root = tmp_path / "home", tmp_path / "pics"
    for i in range(1500):
        write_image(root / f"{i}.png", i)
    run_cli(home, "source", "add", "folder", str(root))
    proc = start_sync(home, 20, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    freeze_mid_scan(proc, home, 40)  # frozen mid-scan, then asked to stop
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGCONT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    (report,) = __import__("json").loads(stdout)
    assert report["status"] == "cancelled"
    assert 0 < report["added"] < 1500
    (rerun,) = cli_json(home, "sync")
    assert rerun["added"] + rerun["unchanged"] == 1500
    assert cli_json(home, "inspect")["assets"] == {"present": 1500}
