"""Sizes of the full and the quick (`--quick`) push run."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class PushSizes:
    files: int  # unique JPEGs pushed
    dirs: int  # folders they are spread over (relative paths with a `/`, as real trees have)
    width: int  # pixels of the one noise JPEG every file is made from; with `height` and
    height: int  # `quality` it encodes to ~2 MB (noise does not compress: ~0.76 B per pixel)
    quality: int
    repeats: int  # best of, for the push and its limits (each push on a fresh server)
    hash_repeats: int  # best of, for the in-process hash limit of the re-push


FULL = PushSizes(
    files=1_000, dirs=10, width=1600, height=1650, quality=85, repeats=2, hash_repeats=3
)
QUICK = dataclasses.replace(FULL, files=100, dirs=2)
