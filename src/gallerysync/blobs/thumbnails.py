"""Thumbnails: longest side 256 px, WebP. JPEGs are decoded in draft mode (DCT scaling).

Made by a job, never on a scan's hot path: decoding costs ~100× more than hashing.
"""

from __future__ import annotations

import io
from typing import BinaryIO

from PIL import Image, ImageOps

__all__ = ["THUMBNAIL_SIZE", "ThumbnailError", "make_thumbnail"]

THUMBNAIL_SIZE = 256


class ThumbnailError(Exception):
    """The image could not be decoded into a thumbnail (corrupt, truncated, unsupported)."""


def make_thumbnail(source: BinaryIO, size: int = THUMBNAIL_SIZE) -> bytes:
    """Decode `source` and return WebP bytes whose longest side is at most `size`."""
    try:
        with Image.open(source) as image:
            if image.format == "JPEG":
                image.draft("RGB", (size, size))
            image.load()
            oriented = ImageOps.exif_transpose(image)
            if oriented.mode not in ("RGB", "RGBA"):
                has_alpha = "A" in oriented.getbands() or "transparency" in oriented.info
                oriented = oriented.convert("RGBA" if has_alpha else "RGB")
            oriented.thumbnail((size, size), Image.Resampling.LANCZOS)
            out = io.BytesIO()
            oriented.save(out, "WEBP", quality=80, method=4)
            return out.getvalue()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ThumbnailError(f"cannot make a thumbnail: {exc}") from exc
