"""Where a download's time goes: the download figure with parts of the store switched off.

Not part of the suite (its variants break the guarantees on purpose); run it by hand:

    .venv/bin/python bench/remote/diagnose_downloads.py [--files 2000] [--repeats 2]

Each variant downloads the same ~200 KB noise PNGs from the ComfyUI double (its own process)
into a fresh home, after the three bare limits of the suite (drop, save to a file, durable
store), run as the suite runs them (`downloads.bare_run`: flushed after the clock stops); as in
the suite, nothing written is removed before the end. Variants, each cumulative on the one
before:

- `full`: `Runtime.download` as users run it;
- `no-record`: the catalog transaction per batch replaced by a no-op;
- `no-flush`: `LocalBlobStore.sync` (the two `syncfs` per batch) a no-op too;
- `no-files`: in-memory bodies never written (`stage`/`publish` no-ops): network, BLAKE3,
  probing and the commit pipeline's hand-offs only.

Prints MB/s per variant and process CPU seconds (ours user/system, the double's).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(BENCH_DIR), str(BENCH_DIR.parent)]

import run  # noqa: E402
from remote.double import DoubleProcess  # noqa: E402
from remote.downloads import bare_run, view_urls  # noqa: E402
from remote.homes import Home  # noqa: E402

VARIANTS = ("full", "no-record", "no-flush", "no-files")


def _switch_off(variant: str) -> None:
    """Monkeypatch the parts `variant` leaves out (cumulative, in `VARIANTS` order)."""
    from gallerysync.blobs.base import StoredBlob
    from gallerysync.blobs.local import BlobWriter, LocalBlobStore
    from gallerysync.sync.download import Downloader

    index = VARIANTS.index(variant)
    if index >= 1:
        Downloader._record_batch = lambda self, batch: ["-"] * len(batch)  # type: ignore[method-assign]
    if index >= 2:
        LocalBlobStore.sync = lambda self: None  # type: ignore[method-assign]
    if index >= 3:

        def publish(self: Any) -> StoredBlob:
            self._close()
            return StoredBlob((self._digest, self.size))

        BlobWriter.stage = lambda self: None  # type: ignore[method-assign]
        BlobWriter.publish = publish  # type: ignore[method-assign]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--variant", choices=VARIANTS, help="(internal) one variant, in-process")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="gs-diag-", dir=os.environ.get("GS_BENCH_DATA")))
    double = DoubleProcess(root / "comfy", root / "comfy.log")
    try:
        double.call("bulk", count=args.files // 2, images=2, content="png", bases=20, seed=7)
        files = double.output_files()
        total = run.warm_cache(files, os.cpu_count() or 1)
        urls = view_urls(double.url, files)
        for attempt in range(args.repeats):
            line = [f"run {attempt + 1}:"]
            for mode in ("discard", "save", "durable"):
                bare, _flush = bare_run(urls, 8, root, mode, attempt)
                line.append(f"bare {mode} {total / run.MB / bare.seconds:,.0f} MB/s;")
            print(" ".join(line), flush=True)
            for variant in VARIANTS:
                print(f"  {variant:9} ", end="", flush=True)  # the child prints the figure
                failed = _one_variant(variant, root / f"home-{variant}-{attempt}", double, total)
                if failed:
                    print(failed, flush=True)
    finally:
        double.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


def _one_variant(variant: str, home_dir: Path, double: DoubleProcess, total: int) -> str:
    """One variant in a child process (monkeypatches must not leak into the next), into a
    fresh home at `home_dir`."""
    pid = os.fork()
    if pid == 0:  # the child: patch, download, report on stdout, exit
        code = 1
        try:
            _switch_off(variant)
            home = Home(home_dir, "comfyui", double.url)
            home.runtime.sync_remote(home.source, mode="full")
            before, cpu = resource.getrusage(resource.RUSAGE_SELF), double.cpu_seconds()
            started = time.perf_counter()
            report = home.runtime.download(source_ids=[home.source.id], concurrency=8)
            seconds = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_SELF)
            assert report.failed == 0 and report.bytes == total, report.as_json()
            print(
                f"{total / run.MB / seconds:,.0f} MB/s ({seconds:.2f} s; CPU user "
                f"{after.ru_utime - before.ru_utime:.2f} s, system "
                f"{after.ru_stime - before.ru_stime:.2f} s, double "
                f"{double.cpu_seconds() - cpu:.2f} s)",
                flush=True,
            )
            home.close(remove=False)  # removed with the rest at the end, as in the suite
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return "" if status == 0 else f"(failed: status {status})"


if __name__ == "__main__":
    sys.exit(main())
