"""Scan benchmark for gallerysync: every figure is printed beside a limit measured in the same run.

Run it from the repository root:

    .venv/bin/python bench/run.py [--suite scan|live|remote|push|stash|all] [--quick]
                                  [--data DIR] [--keep-homes]

This module is the one benchmark command: `--suite scan` runs the scan benchmark described
here, `--suite live` the live benchmarks of `bench/live/` (SSE fan-out, catch-up, asset pages,
first paint in Chromium), `--suite remote` the remote-source benchmarks of `bench/remote/`
(ComfyUI metadata sync, smart sync, downloads, peer replication), `--suite push` the push
benchmarks of `bench/push/` (`gallerysync push` to a `serve`, and a re-push from a fresh
client state), `--suite stash` the Stash benchmarks of `bench/stash/` (initial metadata sync
of a 100,000-image Stash library, no-change smart sync, incremental sync after 100 edits,
post-processing after one gallery edit), and `all` (the default) every suite, in that order.

Method
------
Two trees are generated once under `bench/data/` (or `--data`) and reused while their parameters
match the marker file written beside each tree when it is complete:

* images: 10,000 JPEGs of ~200 KB in 100 nested folders. A few hundred random-noise base JPEGs
  are encoded with Pillow; each file is one of them with a unique COM segment inserted right
  after the JFIF APP0 segment, so every file has distinct bytes and still ends with FF D9.
* small: 100,000 tiny unique PNGs (4x4 RGB, unique pixel and tEXt chunk) in 1,000 folders.

`--quick` divides every count by 10 (a smoke run). Every scan starts on a fresh gallerysync home
under `<data>/homes/`, deleted at the end unless `--keep-homes` is given. All files are read once
before any timing, so every figure (scans and limits alike) is taken with the page cache warm.

Figures and their limits (best of `repeats` runs where a figure is repeated):

1. Initial scan throughput of the image tree, in MB/s of file bytes, against raw BLAKE3: every
   file read and hashed by a thread pool with one thread per core (the scanner's parallelism).
   Measured in-process (`FolderScan(...).run()` on a fresh home; this one is held against the
   goal of >= 0.7x) and through the CLI (`gallerysync --home H source add folder DIR`, then the
   timed `gallerysync --home H sync --json` subprocess), which adds interpreter start-up,
   imports and opening the catalog; the CLI start-up cost is reported on its own line.
2. Rescan of the unchanged small tree against a bare single-threaded walk: recursive
   `os.scandir` with `entry.stat(follow_symlinks=False)` for every file. Goal: in-process
   rescan <= 2x the walk. The CLI rescan is reported too.
3. Rescan after `os.utime` on 1% of the small tree (every 100th file, a new mtime per repeat):
   the extra time over the unchanged rescan against 1% of the in-process initial scan of that
   tree (goal <= 2x: "proportional to the 1%" — a touched file may cost up to twice what a new
   file cost in the initial scan, while a cost proportional to the tree would be ~100x), and
   the number of files hashed, taken from the scan's progress callback
   and cross-checked in the catalog (scan-cache rows whose `seen_at` is after the scan started)
   and against the scan's own `hashed` count when gallerysync reports one.
4. Peak RSS of the CLI initial scan of the small tree: the `sync` child is run by a wrapper
   process (this script re-invoked with `--measure-child`) that reads
   `getrusage(RUSAGE_CHILDREN).ru_maxrss` right after its single child exits. Goal < 250 MB
   (MB = 10^6 bytes). The initial scan time of that tree is reported beside the time SQLite
   needs for a bare `executemany` of as many scan-cache-shaped rows.
5. Context: raw SQLite insert rate (`executemany` of rows shaped like `scan_cache` into a temp
   file in WAL mode, one transaction).

Results: `bench/results/scan-YYYYMMDD-HHMMSS.json` and `.md`, and the scan section of
`bench/results/latest.md` (one section per suite; a run replaces only its own suites' sections).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import random
import re
import resource
import shutil
import sqlite3
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
DEFAULT_DATA = BENCH_DIR / "data"
RESULTS_DIR = BENCH_DIR / "results"
GENERATOR_VERSION = 1
MB = 1_000_000
RSS_GOAL_MB = 250.0
MEASURE_CHILD = "--measure-child"


@dataclass(frozen=True)
class Sizes:
    images: int
    image_dirs: int
    base_images: int
    small: int
    small_dirs: int
    repeats: int
    touched_every: int = 100  # 1%


FULL = Sizes(
    images=10_000, image_dirs=100, base_images=300, small=100_000, small_dirs=1_000, repeats=3
)
QUICK = Sizes(images=1_000, image_dirs=10, base_images=50, small=10_000, small_dirs=100, repeats=3)


@dataclass
class Line:
    """One row of the results table.

    `goal` is held against the ratio figure/limit; `bound` (e.g. "< 100", in the line's unit)
    against the figure itself, for goals stated in absolute terms. A line passes when every goal
    it has holds. A figure of None could not be measured (result "n/a"; the note says why).
    """

    name: str
    figure: float | None
    unit: str
    limit: float | None
    limit_desc: str
    goal: str  # ">= 0.70", "<= 2.00", "< 1.00", "≈ 1.00" (within 10%) or "info"
    note: str = ""
    ratio: float | None = None
    result: str = "info"
    bound: str = ""  # "< 100": an absolute goal on the figure, in `unit`

    def judge(self) -> None:
        if self.figure is None:
            self.ratio, self.result = None, "n/a"
            return
        if self.limit:
            self.ratio = self.figure / self.limit
        checks = []
        if self.goal != "info" and self.ratio is not None:
            checks.append(_holds(self.ratio, self.goal))
        if self.bound:
            checks.append(_holds(self.figure, self.bound))
        if not checks:
            self.result = "info"
            return
        self.result = "PASS" if all(checks) else "MISS"


def _holds(value: float, goal: str) -> bool:
    op, text = goal.split()
    bound = float(text)
    return {
        ">=": value >= bound,
        "<=": value <= bound,
        "<": value < bound,
        "≈": abs(value - bound) <= 0.1 * bound,
    }[op]


@dataclass
class ScanRun:
    seconds: float
    hashed: int
    hashed_bytes: int
    counts: dict[str, Any]
    verified_hashed: int | None = None


@dataclass
class ChildRun:
    seconds: float
    maxrss_kb: int
    returncode: int
    stdout: str
    stderr: str


@dataclass
class Results:
    params: dict[str, Any]
    environment: dict[str, Any]
    raw: dict[str, Any] = field(default_factory=dict)
    lines: list[Line] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def log(message: str) -> None:
    stamp = time.strftime("%H:%M:%S")
    print(f"[{stamp}] {message}", file=sys.stderr, flush=True)


# --- data generation -----------------------------------------------------------------------


def _dir_name(index: int) -> str:
    return f"g{index // 10:03d}/d{index:04d}"


def _tree_ready(tree: Path, params: dict[str, Any]) -> bool:
    marker = tree.with_name(tree.name + ".complete.json")
    try:
        return bool(json.loads(marker.read_text()) == params and tree.is_dir())
    except (OSError, ValueError):
        return False


def _mark_ready(tree: Path, params: dict[str, Any]) -> None:
    marker = tree.with_name(tree.name + ".complete.json")
    marker.write_text(json.dumps(params, indent=2) + "\n")


def _reset_tree(tree: Path) -> None:
    tree.with_name(tree.name + ".complete.json").unlink(missing_ok=True)
    if tree.exists():
        shutil.rmtree(tree)
    tree.mkdir(parents=True)


def _base_jpegs(count: int, rng: random.Random) -> list[bytes]:
    """Random-noise JPEGs of ~200 KB (512 x 480..544 pixels at quality 85)."""
    from PIL import Image

    bases = []
    for _ in range(count):
        height = rng.randint(480, 544)
        image = Image.frombytes("RGB", (512, height), rng.randbytes(512 * height * 3))
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=85)
        bases.append(buffer.getvalue())
    return bases


def _unique_jpeg(base: bytes, index: int) -> bytes:
    """`base` with a unique COM segment after SOI (and after APP0 when there is one)."""
    assert base[:2] == b"\xff\xd8" and base[-2:] == b"\xff\xd9"
    cut = 2
    if base[2:4] == b"\xff\xe0":  # keep JFIF APP0 first, as the JFIF spec wants
        (length,) = struct.unpack(">H", base[4:6])
        cut = 4 + length
    payload = f"gallerysync bench image {index:07d}".encode()
    segment = b"\xff\xfe" + struct.pack(">H", len(payload) + 2) + payload
    return base[:cut] + segment + base[cut:]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _tiny_png(index: int) -> bytes:
    """A unique 4x4 RGB PNG: the first pixel encodes `index`, and a tEXt chunk names it."""
    first = index.to_bytes(3, "big")
    rows = [b"\x00" + first + b"\x80\x80\x80" * 3] + [b"\x00" + b"\x40\x40\x40" * 4] * 3
    return b"".join(
        [
            b"\x89PNG\r\n\x1a\n",
            _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0)),
            _png_chunk(b"tEXt", b"Comment\x00gallerysync bench %d" % index),
            _png_chunk(b"IDAT", zlib.compress(b"".join(rows))),
            _png_chunk(b"IEND", b""),
        ]
    )


def _write_tree(
    tree: Path, count: int, dirs: int, name: Callable[[int], str], content: Callable[[int], bytes]
) -> None:
    per_dir = -(-count // dirs)
    for d in range(dirs):
        (tree / _dir_name(d)).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        with open(tree / _dir_name(i // per_dir) / name(i), "wb") as handle:
            handle.write(content(i))


def ensure_images(tree: Path, sizes: Sizes) -> None:
    params = {
        "kind": "images",
        "files": sizes.images,
        "dirs": sizes.image_dirs,
        "bases": sizes.base_images,
        "generator": GENERATOR_VERSION,
    }
    if _tree_ready(tree, params):
        log(f"reusing {tree} ({sizes.images} JPEGs)")
        return
    log(f"generating {sizes.images} JPEGs in {sizes.image_dirs} folders under {tree} ...")
    started = time.perf_counter()
    _reset_tree(tree)
    rng = random.Random(20240601)
    bases = _base_jpegs(sizes.base_images, rng)
    _write_tree(
        tree,
        sizes.images,
        sizes.image_dirs,
        lambda i: f"img{i:06d}.jpg",
        lambda i: _unique_jpeg(bases[i % len(bases)], i),
    )
    _check_sample_jpeg(next(tree.rglob("*.jpg")))
    _mark_ready(tree, params)
    log(f"  generated in {time.perf_counter() - started:.1f}s")


def _check_sample_jpeg(path: Path) -> None:
    from PIL import Image

    data = path.read_bytes()
    assert data.endswith(b"\xff\xd9"), path
    with Image.open(path) as image:
        image.load()


def ensure_small(tree: Path, sizes: Sizes) -> None:
    params = {
        "kind": "small",
        "files": sizes.small,
        "dirs": sizes.small_dirs,
        "generator": GENERATOR_VERSION,
    }
    if _tree_ready(tree, params):
        log(f"reusing {tree} ({sizes.small} PNGs)")
        return
    log(f"generating {sizes.small} PNGs in {sizes.small_dirs} folders under {tree} ...")
    started = time.perf_counter()
    _reset_tree(tree)
    _write_tree(tree, sizes.small, sizes.small_dirs, lambda i: f"s{i:07d}.png", _tiny_png)
    _mark_ready(tree, params)
    log(f"  generated in {time.perf_counter() - started:.1f}s")


# --- limits ----------------------------------------------------------------------------------


def media_files(tree: Path, suffix: str) -> list[str]:
    found = [
        os.path.join(dirpath, name)
        for dirpath, _dirs, names in os.walk(tree)
        for name in names
        if name.endswith(suffix)
    ]
    found.sort()
    return found


def _read_all(path: str) -> int:
    with open(path, "rb", buffering=0) as handle:
        return len(handle.read())


def warm_cache(paths: Sequence[str], workers: int) -> int:
    """Read every file once so the page cache holds the tree; returns the total bytes."""
    with ThreadPoolExecutor(workers) as pool:
        return sum(pool.map(_read_all, paths))


def raw_blake3(paths: Sequence[str], workers: int) -> tuple[float, int]:
    """Seconds to read and BLAKE3 every file on a pool of `workers` threads; and total bytes."""
    from blake3 import blake3

    def one(path: str) -> int:
        with open(path, "rb", buffering=0) as handle:
            data = handle.read()
        blake3(data).digest()
        return len(data)

    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        total = sum(pool.map(one, paths))
    return time.perf_counter() - started, total


def bare_walk(root: str) -> tuple[float, int]:
    """Seconds for a recursive `os.scandir` + `entry.stat()` of every file, single thread."""
    started = time.perf_counter()
    files = 0
    stack = [root]
    while stack:
        directory = stack.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                else:
                    entry.stat(follow_symlinks=False)
                    files += 1
    return time.perf_counter() - started, files


def remove_sqlite(path: Path) -> None:
    """An SQLite file and its `-wal` / `-shm` companions."""
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def catalog_ddl(tables: Sequence[str]) -> list[str]:
    """gallerysync's own CREATE TABLE / CREATE INDEX statements for these catalog tables
    (compiled from `gallerysync.catalog.schema` for SQLite): same columns, keys and indexes."""
    from sqlalchemy.dialects import sqlite
    from sqlalchemy.schema import CreateIndex, CreateTable

    from gallerysync.catalog import schema

    dialect = sqlite.dialect()
    statements = []
    for name in tables:
        table = schema.metadata.tables[name]
        statements.append(str(CreateTable(table).compile(dialect=dialect)))
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            statements.append(str(CreateIndex(index).compile(dialect=dialect)))
    return statements


@contextlib.contextmanager
def fresh_sqlite(path: Path, ddl: Sequence[str]) -> Iterator[sqlite3.Connection]:
    """A new SQLite file set up as the catalog sets its own (WAL, synchronous=NORMAL,
    autocommit: the caller opens its transactions), with `ddl` run; removed afterwards."""
    remove_sqlite(path)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        for statement in ddl:
            conn.execute(statement)
        yield conn
    finally:
        conn.close()
        remove_sqlite(path)


def sqlite_insert_rate(path: Path, rows: int) -> float:
    """Seconds for one `executemany` of `rows` scan-cache-shaped rows (WAL, one transaction)."""
    ddl = [
        "CREATE TABLE scan_cache (sd_id VARCHAR(36) NOT NULL, rel_path TEXT NOT NULL, "
        "size BIGINT NOT NULL, mtime_ns BIGINT NOT NULL, inode BIGINT NOT NULL, "
        "hash VARCHAR(64), error TEXT, seen_at BIGINT NOT NULL, "
        "PRIMARY KEY (sd_id, rel_path))",
        "CREATE INDEX ix_scan_cache_hash ON scan_cache (hash)",
    ]
    with fresh_sqlite(path, ddl) as conn:
        sd_id = "0190f2c4-5b7e-7a3c-9d1e-2f4a6b8c0d1e"
        now = time.time_ns() // 1_000_000
        data = [
            (
                sd_id,
                f"{_dir_name(i // 100)}/s{i:07d}.png",
                150 + i % 7,
                1_700_000_000_000_000_000 + i,
                1_000_000 + i,
                os.urandom(32).hex(),
                None,
                now,
            )
            for i in range(rows)
        ]
        started = time.perf_counter()
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO scan_cache VALUES (?, ?, ?, ?, ?, ?, ?, ?)", data)
        conn.execute("COMMIT")
        return time.perf_counter() - started


# --- gallerysync, in-process and as a CLI child -----------------------------------------------


class InProcess:
    """A fresh gallerysync home with one folder source, scanned with `FolderScan(...).run()`."""

    def __init__(self, home: Path, tree: Path) -> None:
        from gallerysync.config import load_settings
        from gallerysync.runtime import open_runtime
        from gallerysync.sync.folder import add_folder

        self.home = home
        self.settings = load_settings(home)
        self.runtime = open_runtime(self.settings)
        self.source = add_folder(self.runtime.catalog, tree)

    def scan(self) -> ScanRun:
        from gallerysync.sync.folder import FolderScan

        seen = {"total": 0, "bytes": 0}

        def progress(done: int, total: int, nbytes: int) -> None:
            seen["total"], seen["bytes"] = total, nbytes

        settings = self.settings
        scan = FolderScan(
            self.runtime.catalog,
            self.source,
            workers=settings.effective_hash_workers,
            batch_size=settings.scan_batch_size,
            max_attempts=settings.job_max_attempts,
            progress=progress,
        )
        started_ms = time.time_ns() // 1_000_000
        started = time.perf_counter()
        report = scan.run()
        seconds = time.perf_counter() - started
        if report.status != "ok":
            raise RuntimeError(f"in-process scan ended {report.status}: {report.detail}")
        return ScanRun(
            seconds,
            seen["total"],
            seen["bytes"],
            report.counts.as_dict(),
            hashed_since(self.home, started_ms),
        )

    def close(self) -> None:
        self.runtime.close()


def catalog_ro(home: Path) -> contextlib.closing[sqlite3.Connection]:
    """The home's SQLite catalog, read-only, closed on leaving the `with` block."""
    uri = f"file:{home / 'catalog.sqlite3'}?mode=ro"
    return contextlib.closing(sqlite3.connect(uri, uri=True))


def hashed_since(home: Path, since_ms: int) -> int:
    """Scan-cache rows written at or after `since_ms`: the files a scan (re)examined."""
    with catalog_ro(home) as conn:
        row = conn.execute("SELECT count(*) FROM scan_cache WHERE seen_at >= ?", (since_ms,))
        return int(row.fetchone()[0])


def gallerysync_command() -> list[str]:
    script = Path(sys.executable).with_name("gallerysync")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "gallerysync"]


def run_child(args: Sequence[str], scratch: Path) -> ChildRun:
    """Run `gallerysync ARGS` under the measuring wrapper; wall time and peak RSS of that child."""
    out = scratch / f"child-{time.time_ns()}.json"
    wrapper = [sys.executable, str(Path(__file__).resolve()), MEASURE_CHILD, str(out), "--"]
    subprocess.run([*wrapper, *gallerysync_command(), *args], check=True)
    data = json.loads(out.read_text())
    out.unlink()
    run = ChildRun(**data)
    if run.returncode != 0:
        raise RuntimeError(
            f"gallerysync {' '.join(args)} exited {run.returncode}:\n{run.stderr[-4000:]}"
        )
    return run


def measure_child_main(argv: Sequence[str]) -> int:
    """Wrapper mode: run one child, then report its wall time and peak RSS as JSON."""
    out, sep, *cmd = argv
    assert sep == "--" and cmd, argv
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    maxrss_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    run = ChildRun(seconds, maxrss_kb, done.returncode, done.stdout, done.stderr)
    Path(out).write_text(json.dumps(asdict(run)))
    return 0


class CliHome:
    """A fresh home driven only through the `gallerysync` command."""

    def __init__(self, home: Path, tree: Path, scratch: Path) -> None:
        self.home = home
        self.scratch = scratch
        self.add = run_child(
            ["--home", str(home), "source", "add", "folder", str(tree), "--json"], scratch
        )

    def sync(self) -> tuple[ChildRun, dict[str, Any], int]:
        started_ms = time.time_ns() // 1_000_000
        run = run_child(["--home", str(self.home), "sync", "--json"], self.scratch)
        reports = json.loads(run.stdout)
        assert len(reports) == 1 and reports[0]["status"] == "ok", reports
        return run, reports[0], hashed_since(self.home, started_ms)

    def startup(self) -> ChildRun:
        """`source list --json`: interpreter, imports, settings and opening the catalog."""
        runs = [
            run_child(["--home", str(self.home), "source", "list", "--json"], self.scratch)
            for _ in range(2)
        ]
        return min(runs, key=lambda r: r.seconds)


# --- the benchmark ---------------------------------------------------------------------------


def _best(values: Sequence[float]) -> float:
    return min(values)


def _counted(counts: dict[str, Any]) -> Any:
    """`hashed` from the scan counts, when this gallerysync version reports it."""
    return counts.get("hashed", "n/a")


def warn(results: Results, message: str) -> None:
    """A sanity failure: the suite exits 1 (the goals only say PASS/MISS)."""
    results.warnings.append(message)
    log("WARNING " + message)


def expect(results: Results, what: str, got: Any, wanted: Any) -> None:
    if got != "n/a" and got != wanted:
        warn(results, f"{what}: got {got}, expected {wanted}")


def bench_images(results: Results, tree: Path, homes: Path, sizes: Sizes, workers: int) -> None:
    paths = media_files(tree, ".jpg")
    expect(results, "image files on disk", len(paths), sizes.images)
    log(f"images: warming the page cache ({len(paths)} files) ...")
    total = warm_cache(paths, workers)
    raw_runs = [raw_blake3(paths, workers) for _ in range(sizes.repeats)]
    raw_s = _best([s for s, _ in raw_runs])
    raw_rate = total / MB / raw_s
    log(f"  raw BLAKE3 ({workers} threads): {raw_rate:.0f} MB/s ({total / MB:.0f} MB)")

    log("images: in-process initial scan (fresh home) ...")
    inproc = InProcess(homes / "images-inprocess", tree)
    try:
        scan = inproc.scan()
    finally:
        inproc.close()
    expect(results, "in-process image scan: added", scan.counts["added"], len(paths))
    expect(results, "in-process image scan: errors", scan.counts["errors"], 0)
    inproc_rate = total / MB / scan.seconds
    log(f"  {scan.seconds:.2f}s = {inproc_rate:.0f} MB/s")

    log("images: CLI initial scan (fresh home) ...")
    cli = CliHome(homes / "images-cli", tree, homes)
    run, report, _hashed = cli.sync()
    expect(results, "CLI image scan: added", report["added"], len(paths))
    expect(results, "CLI image scan: errors", report["errors"], 0)
    cli_rate = total / MB / run.seconds
    startup = cli.startup()
    log(f"  {run.seconds:.2f}s = {cli_rate:.0f} MB/s (start-up {startup.seconds:.2f}s)")

    results.raw["images"] = {
        "files": len(paths),
        "bytes": total,
        "raw_blake3_seconds": [s for s, _ in raw_runs],
        "in_process_scan": asdict(scan),
        "cli_add_seconds": cli.add.seconds,
        "cli_sync": {**asdict(run), "report": report},
        "cli_startup": asdict(startup),
    }
    limit_desc = f"raw BLAKE3, {workers} threads"
    results.lines += [
        Line(
            f"initial scan {len(paths):,} JPEG, in-process",
            inproc_rate,
            "MB/s",
            raw_rate,
            limit_desc,
            ">= 0.70",
            f"{scan.seconds:.2f}s for {total / MB:.0f} MB; held against the goal",
        ),
        Line(
            f"initial scan {len(paths):,} JPEG, CLI sync",
            cli_rate,
            "MB/s",
            raw_rate,
            limit_desc,
            "info",
            f"{run.seconds:.2f}s wall, {report['seconds']:.2f}s inside the scan",
        ),
        Line(
            "CLI start-up (`source list --json`)",
            startup.seconds,
            "s",
            run.seconds,
            "CLI sync of the image tree",
            "info",
            f"peak RSS {startup.maxrss_kb * 1024 / MB:.0f} MB",
        ),
    ]


def _touch(paths: Sequence[str], mtime_ns: int) -> None:
    for path in paths:
        os.utime(path, ns=(mtime_ns, mtime_ns))


def bench_small(results: Results, tree: Path, homes: Path, sizes: Sizes, workers: int) -> None:
    paths = media_files(tree, ".png")
    n = len(paths)
    expect(results, "small files on disk", n, sizes.small)
    log(f"small: warming the page cache ({n} files) ...")
    warm_cache(paths, workers)
    bare_walk(str(tree))

    log("small: SQLite executemany context ...")
    sqlite_s = _best(
        [sqlite_insert_rate(homes / "sqlite-rate.db", n) for _ in range(sizes.repeats)]
    )
    log(f"  {n / sqlite_s:,.0f} rows/s")

    log("small: CLI initial scan (fresh home, peak RSS) ...")
    cli = CliHome(homes / "small-cli", tree, homes)
    cli_initial, cli_initial_report, _ = cli.sync()
    expect(results, "CLI small initial: added", cli_initial_report["added"], n)
    rss_mb = cli_initial.maxrss_kb * 1024 / MB
    log(f"  {cli_initial.seconds:.2f}s, peak RSS {rss_mb:.0f} MB")
    log("small: CLI unchanged rescan ...")
    cli_rescan, cli_rescan_report, cli_rescan_hashed = cli.sync()
    expect(results, "CLI unchanged rescan: hashed", cli_rescan_hashed, 0)
    expect(results, "CLI unchanged rescan: counts", _counted(cli_rescan_report), 0)
    log(f"  {cli_rescan.seconds:.2f}s")

    log("small: in-process initial scan (fresh home) ...")
    inproc = InProcess(homes / "small-inprocess", tree)
    try:
        initial = inproc.scan()
        expect(results, "in-process small initial: added", initial.counts["added"], n)
        log(f"  {initial.seconds:.2f}s")

        log("small: bare walk vs in-process unchanged rescan ...")
        walks: list[float] = []
        rescans: list[ScanRun] = []
        for _ in range(sizes.repeats):
            seconds, walked = bare_walk(str(tree))
            walks.append(seconds)
            rescans.append(inproc.scan())
        for r in rescans:
            expect(results, "in-process unchanged rescan: hashed", r.hashed, 0)
            expect(results, "in-process unchanged rescan: re-cached", r.verified_hashed, 0)
            expect(results, "in-process unchanged rescan: counts", _counted(r.counts), 0)
            expect(results, "in-process unchanged rescan: unchanged", r.counts["unchanged"], n)
        walk_s = _best(walks)
        rescan_s = _best([r.seconds for r in rescans])
        log(f"  walk {walk_s:.3f}s ({walked} entries), rescan {rescan_s:.3f}s")

        touched = paths[:: sizes.touched_every]
        log(f"small: rescans after touching {len(touched)} files ...")
        touched_runs: list[ScanRun] = []
        for repeat in range(sizes.repeats):
            _touch(touched, time.time_ns() - 3_600_000_000_000 + repeat)
            touched_runs.append(inproc.scan())
        want = len(touched)
        for r in touched_runs:
            expect(results, "in-process 1% rescan: hashed (progress)", r.hashed, want)
            expect(results, "in-process 1% rescan: hashed (catalog)", r.verified_hashed, want)
            expect(results, "in-process 1% rescan: hashed (counts)", _counted(r.counts), want)
        touched_s = _best([r.seconds for r in touched_runs])
        log(f"  {touched_s:.3f}s")
    finally:
        inproc.close()

    log("small: CLI rescan after the touches ...")
    cli_touched, cli_touched_report, cli_touched_hashed = cli.sync()
    expect(results, "CLI 1% rescan: hashed (catalog)", cli_touched_hashed, len(touched))
    expect(results, "CLI 1% rescan: hashed (counts)", _counted(cli_touched_report), len(touched))
    log(f"  {cli_touched.seconds:.2f}s")

    share = len(touched) / n
    extra = touched_s - rescan_s
    cli_extra = cli_touched.seconds - cli_rescan.seconds
    hashed_min = min(r.hashed for r in touched_runs)
    hashed_max = max(r.hashed for r in touched_runs)
    results.raw["small"] = {
        "files": n,
        "walk_entries": walked,
        "touched": len(touched),
        "sqlite_executemany_seconds": sqlite_s,
        "bare_walk_seconds": walks,
        "in_process_initial": asdict(initial),
        "in_process_unchanged": [asdict(r) for r in rescans],
        "in_process_touched": [asdict(r) for r in touched_runs],
        "cli_add_seconds": cli.add.seconds,
        "cli_initial": {**asdict(cli_initial), "report": cli_initial_report},
        "cli_unchanged": {**asdict(cli_rescan), "report": cli_rescan_report},
        "cli_touched": {
            **asdict(cli_touched),
            "report": cli_touched_report,
            "hashed_per_catalog": cli_touched_hashed,
        },
    }
    pct = f"{share:.0%}"
    results.lines += [
        Line(
            f"rescan {n:,} unchanged, in-process",
            rescan_s,
            "s",
            walk_s,
            "bare scandir+stat walk, 1 thread",
            "<= 2.00",
            "held against the goal",
        ),
        Line(
            f"rescan {n:,} unchanged, CLI sync",
            cli_rescan.seconds,
            "s",
            walk_s,
            "bare scandir+stat walk, 1 thread",
            "info",
            f"{cli_rescan_report['seconds']:.2f}s inside the scan",
        ),
        Line(
            f"rescan, {pct} touched: extra over unchanged, in-process",
            extra,
            "s",
            initial.seconds * share,
            f"{pct} of in-process initial scan",
            "<= 2.00",
            f"rescan {touched_s:.3f}s - unchanged {rescan_s:.3f}s; held against the goal",
        ),
        Line(
            f"rescan, {pct} touched: files hashed, in-process",
            float(hashed_max),
            "files",
            float(len(touched)),
            "files touched",
            "≈ 1.00",
            f"progress callback min {hashed_min}, max {hashed_max}; scan-cache rows written "
            f"{[r.verified_hashed for r in touched_runs]}; scan counts "
            f"{[_counted(r.counts) for r in touched_runs]}",
        ),
        Line(
            f"rescan, {pct} touched: extra over unchanged, CLI",
            cli_extra,
            "s",
            cli_initial.seconds * share,
            f"{pct} of CLI initial scan",
            "info",
            f"{cli_touched_hashed} scan-cache rows written, "
            f"counts say {_counted(cli_touched_report)} hashed",
        ),
        Line(
            f"peak RSS, initial scan {n:,} files, CLI",
            rss_mb,
            "MB",
            RSS_GOAL_MB,
            "fixed goal, MB = 10^6 B",
            "< 1.00",
            "ru_maxrss of the single sync child",
        ),
        Line(
            f"initial scan {n:,} files, CLI sync",
            cli_initial.seconds,
            "s",
            sqlite_s,
            f"SQLite executemany of {n:,} rows",
            "info",
            f"{n / cli_initial.seconds:,.0f} files/s; "
            f"{cli_initial_report['seconds']:.2f}s inside the scan",
        ),
        Line(
            f"initial scan {n:,} files, in-process",
            initial.seconds,
            "s",
            sqlite_s,
            f"SQLite executemany of {n:,} rows",
            "info",
            f"{n / initial.seconds:,.0f} files/s",
        ),
        Line(
            "SQLite executemany, WAL, 1 transaction",
            n / sqlite_s,
            "rows/s",
            None,
            "(context)",
            "info",
            "scan_cache-shaped rows, PK + hash index",
        ),
    ]


# --- output ----------------------------------------------------------------------------------


# Units whose figures are shown without decimals.
WHOLE_UNITS = (
    "MB/s",
    "MB",
    "rows/s",
    "files",
    "req/s",
    "events",
    "B",
    "items/s",
    "requests",
    "origins",
)


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit in WHOLE_UNITS:
        text = f"{value:,.0f}"
    elif unit == "ms":
        text = f"{value:,.1f}"
    elif abs(value) < 10:
        text = f"{value:.3f}"
    else:
        text = f"{value:.1f}"
    return f"{text} {unit}".strip()


def _goal_text(line: Line) -> str:
    parts = [] if line.goal == "info" else [f"{line.goal}x"]
    if line.bound:
        parts.append(f"{line.bound} {line.unit}")
    return " and ".join(parts) or "info"


def table_rows(lines: Sequence[Line]) -> list[list[str]]:
    rows = []
    for line in lines:
        limit = _fmt(line.limit, line.unit if line.unit != "rows/s" else "")
        rows.append(
            [
                line.name,
                _fmt(line.figure, line.unit),
                f"{limit} ({line.limit_desc})" if line.limit is not None else line.limit_desc,
                "-" if line.ratio is None else f"{line.ratio:.2f}x",
                _goal_text(line),
                line.result,
            ]
        )
    return rows


HEADER = ["measure", "figure", "limit", "ratio", "goal", "result"]


def text_table(lines: Sequence[Line]) -> str:
    rows = [HEADER, *table_rows(lines)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    out = []
    for index, row in enumerate(rows):
        out.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if index == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def markdown(results: Results, command: str) -> str:
    p = results.params
    head = [
        f"# gallerysync scan benchmark — {p['started']}",
        "",
        f"Command: `{command}`  ",
        f"Mode: {'quick (1/10 sizes)' if p['quick'] else 'full'}; "
        f"{p['images']:,} JPEGs ({p['image_bytes'] / MB:,.0f} MB) in {p['image_dirs']} folders, "
        f"{p['small']:,} PNGs in {p['small_dirs']} folders; best of {p['repeats']} where repeated.",
    ]
    tail = [
        environment_text(results.environment),
        "",
        "The in-process figures (`FolderScan(...).run()`, catalog already open) are the ones held "
        "against the goals; CLI figures add interpreter start-up, imports and opening the catalog. "
        "All files are in the page cache for scans and limits alike. Method: see `bench/run.py`.",
    ]
    return markdown_document(head, results, tail)


def markdown_document(head: Sequence[str], results: Results, tail: Sequence[str]) -> str:
    """A suite's results page: `head`, the table, the notes per line, `tail`, the warnings."""
    md = [
        *head,
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "|".join("---" for _ in HEADER) + "|",
        *(
            "| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |"
            for row in table_rows(results.lines)
        ),
        "",
        "Notes per line:",
        "",
        *(f"- {line.name}: {line.note}" for line in results.lines if line.note),
        "",
        *tail,
    ]
    if results.warnings:
        md += ["", "Warnings:", "", *(f"- {w}" for w in results.warnings)]
    return "\n".join(md) + "\n"


def environment_text(env: dict[str, Any], extra: str = "") -> str:
    """The environment sentence; `extra` ("; uvicorn …") goes before the load average."""
    return (
        f"Environment: Python {env['python']}, {env['cpus']} CPUs, {env['platform']}, "
        f"gallerysync {env['gallerysync']} at {env['git_commit']}"
        f"{' (dirty tree)' if env['git_dirty'] else ''}{extra}; load average (1, 5, 15 min) "
        f"{env['load_average_at_start']} at start, {env['load_average_at_end']} at the end "
        "(other processes on the machine make the figures noisier)."
    )


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def note_busy() -> None:
    busy = os.getloadavg()[0]
    if busy > 0.5:
        log(f"note: load average {busy:.2f} before starting; other processes may skew figures")


@dataclass
class SuiteRun:
    """What every suite of `bench/<kind>/` does around its figures: its stamp, clock, results
    and a fresh homes directory at the start (`start_suite`); removing the homes, timing and
    reporting at the end."""

    kind: str
    quick: bool
    stamp: str
    clock: float
    results: Results
    homes: Path

    def remove_homes(self, keep: bool) -> None:
        if not keep:
            shutil.rmtree(self.homes, ignore_errors=True)

    def report(self, command: str, render: Callable[[Results, float], str]) -> int:
        """Time the suite, then `report` (render gets the results and the suite's seconds)."""
        seconds = time.perf_counter() - self.clock
        self.results.params["suite_seconds"] = round(seconds, 1)
        log(f"{self.kind} suite took {seconds:.0f}s")
        name = f"{self.kind}-{self.stamp}{'-quick' if self.quick else ''}"
        return report(self.results, self.kind, name, command, lambda r: render(r, seconds))


def start_suite(
    kind: str, quick: bool, data: Path, params: dict[str, Any], env: dict[str, Any]
) -> SuiteRun:
    """Start a suite: note a busy machine, record the common parameters before `params`, and
    make `<data>/homes/<kind>-<stamp>/`."""
    started = datetime.now()
    stamp = started.strftime("%Y%m%d-%H%M%S")
    clock = time.perf_counter()
    note_busy()
    results = Results(
        params={
            "started": started.isoformat(timespec="seconds"),
            "quick": quick,
            "data": str(data),
            **params,
        },
        environment=env,
    )
    homes = data / "homes" / f"{kind}-{stamp}"
    homes.mkdir(parents=True)
    return SuiteRun(kind, quick, stamp, clock, results, homes)


def environment() -> dict[str, Any]:
    import gallerysync

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=REPO_DIR, capture_output=True, text=True, check=True
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "gallerysync": gallerysync.__version__,
        "git_commit": git("rev-parse", "--short", "HEAD") or "unknown",
        "git_dirty": bool(git("status", "--porcelain", "--", "src")),
        "load_average_at_start": load_average(),
    }


SUITES = ("scan", "live", "remote", "push", "stash")
LATEST_TITLE = "# gallerysync benchmarks — latest results"


def write_latest(suite: str, summary: str) -> None:
    """Replace `suite`'s section of `latest.md`, keeping the other suites' latest results.

    A `latest.md` without section markers (written before there were suites) is the scan
    suite's section.
    """
    path = RESULTS_DIR / "latest.md"
    try:
        text = path.read_text()
    except FileNotFoundError:
        text = ""
    sections: dict[str, str] = {}
    found = re.findall(r"<!-- suite: (\w+) -->\n(.*?)<!-- /suite: \1 -->\n", text, re.S)
    if found:
        sections.update(found)
    elif text.startswith("# gallerysync scan benchmark"):
        sections["scan"] = _demote(text)
    sections[suite] = _demote(summary)
    order = [*SUITES, *sorted(set(sections) - set(SUITES))]
    body = [
        LATEST_TITLE,
        "",
        "One section per suite (`.venv/bin/python bench/run.py --suite "
        "scan|live|remote|push|stash|all`); a run replaces only the sections of the suites "
        "it ran. Every run's full results are in the timestamped files beside this one.",
        "",
    ]
    for name in order:
        if name in sections:
            body += [
                f"<!-- suite: {name} -->",
                sections[name].rstrip("\n"),
                "",
                f"<!-- /suite: {name} -->",
            ]
            body.append("")
    path.write_text("\n".join(body))


def _demote(markdown_text: str) -> str:
    """Headings one level down, so each suite's document becomes a section."""
    return re.sub(r"^(#+) ", r"#\1 ", markdown_text, flags=re.M)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == [MEASURE_CHILD]:
        return measure_child_main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--suite",
        choices=(*SUITES, "all"),
        default="all",
        help="scan (bench/run.py), live (bench/live/), remote (bench/remote/), push "
        "(bench/push/), stash (bench/stash/) or all (default)",
    )
    parser.add_argument("--quick", action="store_true", help="1/10 of the sizes (smoke run)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="generated trees")
    parser.add_argument("--keep-homes", action="store_true", help="keep the gallerysync homes")
    args = parser.parse_args(argv)
    command = " ".join([".venv/bin/python", "bench/run.py", *argv])
    data = args.data.expanduser().resolve()
    data.mkdir(parents=True, exist_ok=True)
    code = 0
    if args.suite in ("scan", "all"):
        code = max(code, scan_suite(args.quick, data, args.keep_homes, command))
    if args.suite in ("live", "all"):
        import live

        code = max(code, live.live_suite(args.quick, data, args.keep_homes, command))
    if args.suite in ("remote", "all"):
        import remote

        code = max(code, remote.remote_suite(args.quick, data, args.keep_homes, command))
    if args.suite in ("push", "all"):
        import push

        code = max(code, push.push_suite(args.quick, data, args.keep_homes, command))
    if args.suite in ("stash", "all"):
        import stash

        code = max(code, stash.stash_suite(args.quick, data, args.keep_homes, command))
    return code


def scan_suite(quick: bool, data: Path, keep_homes: bool, command: str) -> int:
    """The scan benchmark (this module's docstring); returns 1 when a sanity check failed."""
    sizes = QUICK if quick else FULL
    workers = os.cpu_count() or 1
    started = datetime.now()
    stamp = started.strftime("%Y%m%d-%H%M%S")

    suffix = "-quick" if quick else ""
    images_tree = data / f"images{suffix}"
    small_tree = data / f"small{suffix}"
    note_busy()
    ensure_images(images_tree, sizes)
    ensure_small(small_tree, sizes)

    homes = data / "homes" / stamp
    homes.mkdir(parents=True)
    results = Results(
        params={
            "started": started.isoformat(timespec="seconds"),
            "quick": quick,
            "data": str(data),
            **asdict(sizes),
            "hash_threads_limit": workers,
        },
        environment=environment(),
    )
    try:
        bench_images(results, images_tree, homes, sizes, workers)
        results.params["image_bytes"] = results.raw["images"]["bytes"]
        bench_small(results, small_tree, homes, sizes, workers)
    finally:
        if not keep_homes:
            shutil.rmtree(homes, ignore_errors=True)
    return report(results, "scan", f"scan-{stamp}{suffix}", command, lambda r: markdown(r, command))


def report(
    results: Results, suite: str, name: str, command: str, render: Callable[[Results], str]
) -> int:
    """Judge the lines, print the table, write `name`.json and .md and `suite`'s section of
    `latest.md`; returns 1 when a sanity check failed."""
    for line in results.lines:
        line.judge()
    results.environment["load_average_at_end"] = load_average()
    print(text_table(results.lines))
    for warning in results.warnings:
        print(f"WARNING: {warning}")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    payload = {
        "command": command,
        "params": results.params,
        "environment": results.environment,
        "lines": [asdict(line) for line in results.lines],
        "warnings": results.warnings,
        "raw": results.raw,
    }
    (RESULTS_DIR / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    summary = render(results)
    (RESULTS_DIR / f"{name}.md").write_text(summary)
    write_latest(suite, summary)
    log(f"results: {RESULTS_DIR / name}.json, .md and latest.md")
    return 1 if results.warnings else 0


if __name__ == "__main__":
    sys.modules.setdefault("run", sys.modules[__name__])  # bench/live/ imports this module as `run`
    sys.exit(main())
