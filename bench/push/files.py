"""The pushed folder: unique, valid ~2 MB JPEGs, made cheaply from one noise JPEG."""

from __future__ import annotations

import io
import random
import time
from pathlib import Path

import run
from push.sizes import PushSizes
from run import log


def noise_jpeg(sizes: PushSizes, seed: int = 20261121) -> bytes:
    """One JPEG of random-noise pixels: noise does not compress, so the size is set by the
    pixel count and quality (1600 x 1650 at quality 85: ~2.0 MB)."""
    from PIL import Image

    rng = random.Random(seed)
    pixels = rng.randbytes(sizes.width * sizes.height * 3)
    image = Image.frombytes("RGB", (sizes.width, sizes.height), pixels)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=sizes.quality)
    return buffer.getvalue()


def write_files(folder: Path, sizes: PushSizes) -> list[str]:
    """`sizes.files` JPEGs under `folder`, in `sizes.dirs` folders; their paths, sorted.

    Each is the one noise JPEG with a COM segment naming its index inserted after the JFIF
    APP0 segment (the scan suite's `run._unique_jpeg`): unique bytes, so the server stores
    every one as a new asset, and still a complete JPEG (SOI … EOI), so the server's probe
    accepts it — appending random bytes instead would make files the server refuses (415).
    """
    started = time.perf_counter()
    base = noise_jpeg(sizes)
    log(f"push: writing {sizes.files:,} JPEGs of {len(base) / run.MB:.2f} MB under {folder} ...")
    folder.mkdir(parents=True)
    run._write_tree(
        folder,
        sizes.files,
        sizes.dirs,
        lambda i: f"img{i:05d}.jpg",
        lambda i: run._unique_jpeg(base, i),
    )
    paths = run.media_files(folder, ".jpg")
    run._check_sample_jpeg(Path(paths[-1]))
    log(f"  written in {time.perf_counter() - started:.1f}s")
    return paths
