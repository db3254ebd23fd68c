"""Sizes of the full and the quick (`--quick`) remote run."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class RemoteSizes:
    entries: int  # ComfyUI history entries of the metadata figures
    images_per_entry: int  # image outputs per entry (each one asset + one origin)
    smart_runs: int  # no-change smart syncs (the median is the figure)
    downloads: int  # ~200 KB images downloaded
    images_per_download_entry: int
    download_concurrency: int
    png_bases: int  # distinct noise PNGs the download images are made from
    peer_assets: int
    repeats: int  # best of, for every figure that needs a fresh home per run
    rounds: int  # interleaved rounds of the goal figures (engine and limit take turns; medians)


FULL = RemoteSizes(
    entries=10_000,
    images_per_entry=3,
    smart_runs=7,
    downloads=2_000,
    images_per_download_entry=2,
    download_concurrency=8,
    png_bases=20,
    peer_assets=10_000,
    repeats=3,
    rounds=5,
)
QUICK = dataclasses.replace(FULL, entries=1_000, downloads=200, png_bases=10, peer_assets=1_000)
