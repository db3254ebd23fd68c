"""Recognise media files and read their dimensions from headers, without decoding pixels.

PNG, JPEG, GIF and WebP headers are parsed here directly (a few microseconds each, on bytes the
hasher has already read); TIFF, HEIC, AVIF and BMP go through Pillow's lazy `Image.open`, which
also reads only the header. Because the hasher sees every byte, the end of the file is checked
too: a JPEG without its end marker, a PNG without `IEND`, a GIF without its trailer or a WebP
shorter than its RIFF size is reported as truncated instead of being registered.
"""

from __future__ import annotations

import contextlib
import io
import struct
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image

__all__ = [
    "IMAGE_EXTENSIONS",
    "MEDIA_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "MediaError",
    "MediaInfo",
    "guess_media",
    "media_kind_for_name",
    "probe",
    "probe_file",
]

with contextlib.suppress(ImportError):  # HEIC/AVIF where the wheel is available
    import pillow_heif

    pillow_heif.register_heif_opener()

IMAGE_EXTENSIONS = frozenset(
    {
        "png",
        "jpg",
        "jpeg",
        "jpe",
        "jfif",
        "webp",
        "gif",
        "tif",
        "tiff",
        "heic",
        "heif",
        "avif",
        "bmp",
    }
)
VIDEO_EXTENSIONS = frozenset({"mp4", "m4v", "mov", "webm", "mkv", "avi"})
MEDIA_EXTENSIONS = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS

_MIME = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "GIF": "image/gif",
    "WEBP": "image/webp",
    "TIFF": "image/tiff",
    "HEIF": "image/heif",
    "AVIF": "image/avif",
    "BMP": "image/bmp",
    "MP4": "video/mp4",
    "MOV": "video/quicktime",
    "WEBM": "video/webm",
    "MKV": "video/x-matroska",
    "AVI": "video/x-msvideo",
}
_JPEG_SOF = frozenset(
    {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
)


class MediaError(Exception):
    """The file has a media extension but is not a readable, complete image or video."""


@dataclass(frozen=True, slots=True)
class MediaInfo:
    kind: str  # image | video
    format: str
    mime: str
    width: int | None
    height: int | None


def media_kind_for_name(name: str) -> str | None:
    """`image`, `video`, or None for a file gallerysync does not catalog (by extension)."""
    _, dot, ext = name.rpartition(".")
    if not dot:
        return None
    ext = ext.lower()
    if ext in IMAGE_EXTENSIONS:
        return "image"
    if ext in VIDEO_EXTENSIONS:
        return "video"
    return None


_EXT_FORMAT = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "gif": "GIF"}


def guess_media(name: str) -> tuple[str, str | None, str | None]:
    """`(kind, format, mime)` from a file name alone: what a remote asset shows before its
    bytes are here (probing the bytes replaces it after the download)."""
    kind = media_kind_for_name(name) or "image"
    ext = name.rpartition(".")[2].lower()
    fmt = _EXT_FORMAT.get(ext, ext.upper() or None)
    return kind, fmt, _MIME.get(fmt or "")


def probe(name: str, head: bytes, tail: bytes, size: int, path: str | BinaryIO) -> MediaInfo:
    """Identify a file from its first bytes (`head`) and last bytes (`tail`).

    `path` (a file name or a readable file) is read only for formats whose header is parsed
    by Pillow.
    """
    if size == 0:
        raise MediaError("empty file (0 bytes)")
    kind = media_kind_for_name(name)
    if kind == "video":
        return _probe_video(name, head)
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return _probe_png(head, tail)
    if head.startswith(b"\xff\xd8\xff"):
        return _probe_jpeg(head, tail, size, path)
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return _probe_gif(head, tail)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _probe_webp(head, size)
    return _probe_with_pillow(path)


_PROBE_HEAD, _PROBE_TAIL = 1 << 18, 1 << 16


def probe_file(path: str, size: int, name: str) -> MediaInfo:
    """`probe` for bytes already in a file (a download or an upload in its temp file):
    reads the head and the tail only. `name` decides the kind by extension."""
    with open(path, "rb") as f:
        head = f.read(_PROBE_HEAD)
        if size > _PROBE_HEAD:
            f.seek(max(0, size - _PROBE_TAIL))
        tail = f.read(_PROBE_TAIL) if size > _PROBE_HEAD else head[-_PROBE_TAIL:]
    return probe(name, head, tail, size, path)


def probe_bytes(data: bytes, name: str) -> MediaInfo:
    """`probe` for bytes held in memory (a download not yet written)."""
    return probe(name, data[:_PROBE_HEAD], data[-_PROBE_TAIL:], len(data), io.BytesIO(data))


def _probe_png(head: bytes, tail: bytes) -> MediaInfo:
    if len(head) < 24 or head[12:16] != b"IHDR":
        raise MediaError("truncated PNG header")
    width, height = struct.unpack(">II", head[16:24])
    if tail[-8:-4] != b"IEND":
        raise MediaError("truncated PNG: no IEND chunk at the end")
    return MediaInfo("image", "PNG", _MIME["PNG"], width, height)


def _probe_jpeg(head: bytes, tail: bytes, size: int, path: str | BinaryIO) -> MediaInfo:
    stripped = tail.rstrip(b"\x00")
    if not stripped.endswith(b"\xff\xd9") and not (size > 65536 and b"\xff\xd9" in tail):
        raise MediaError("truncated JPEG: no end-of-image marker")
    pos = 2
    while pos + 4 <= len(head):
        if head[pos] != 0xFF:
            raise MediaError(f"corrupt JPEG: bad marker at byte {pos}")
        marker = head[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        (length,) = struct.unpack(">H", head[pos + 2 : pos + 4])
        if marker in _JPEG_SOF:
            if pos + 9 > len(head):
                break
            height, width = struct.unpack(">HH", head[pos + 5 : pos + 9])
            return MediaInfo("image", "JPEG", _MIME["JPEG"], width, height)
        if marker in (0xDA, 0xD9):
            raise MediaError("corrupt JPEG: no frame header before the image data")
        pos += 2 + length
    if len(head) < size:  # header longer than what we buffered: let Pillow read it
        return _probe_with_pillow(path)
    raise MediaError("corrupt JPEG: no frame header")


def _probe_gif(head: bytes, tail: bytes) -> MediaInfo:
    if len(head) < 10:
        raise MediaError("truncated GIF header")
    width, height = struct.unpack("<HH", head[6:10])
    if not tail.rstrip(b"\x00").endswith(b"\x3b"):
        raise MediaError("truncated GIF: no trailer byte")
    return MediaInfo("image", "GIF", _MIME["GIF"], width, height)


def _probe_webp(head: bytes, size: int) -> MediaInfo:
    (riff_size,) = struct.unpack("<I", head[4:8])
    if riff_size + 8 > size:
        raise MediaError(f"truncated WebP: RIFF says {riff_size + 8} bytes, file has {size}")
    chunk = head[12:16]
    try:
        if chunk == b"VP8 ":
            width, height = struct.unpack("<HH", head[26:30])
            width, height = width & 0x3FFF, height & 0x3FFF
        elif chunk == b"VP8L":
            b0, b1, b2, b3 = head[21:25]
            width = 1 + (b0 | (b1 & 0x3F) << 8)
            height = 1 + (b1 >> 6 | b2 << 2 | (b3 & 0x0F) << 10)
        elif chunk == b"VP8X":
            width = 1 + int.from_bytes(head[24:27], "little")
            height = 1 + int.from_bytes(head[27:30], "little")
        else:
            raise MediaError(f"corrupt WebP: unknown chunk {chunk!r}")
    except (struct.error, ValueError) as exc:
        raise MediaError("truncated WebP header") from exc
    return MediaInfo("image", "WEBP", _MIME["WEBP"], width, height)


def _probe_with_pillow(path: str | BinaryIO) -> MediaInfo:
    try:
        with Image.open(path) as image:
            fmt = (image.format or "").upper()
            width, height = image.size
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise MediaError(f"not a readable image: {exc}") from exc
    if fmt == "MPO":
        fmt = "JPEG"
    return MediaInfo("image", fmt, _MIME.get(fmt, f"image/{fmt.lower()}"), width, height)


def _probe_video(name: str, head: bytes) -> MediaInfo:
    ext = name.rpartition(".")[2].lower()
    if ext in ("mp4", "m4v", "mov"):
        if head[4:8] not in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip"):
            raise MediaError(f"not a valid {ext.upper()} file (no ISO-BMFF box at the start)")
        fmt = "MOV" if ext == "mov" else "MP4"
    elif ext in ("webm", "mkv"):
        if head[:4] != b"\x1a\x45\xdf\xa3":
            raise MediaError(f"not a valid {ext.upper()} file (no EBML header)")
        fmt = ext.upper()
    else:
        if head[:4] != b"RIFF" or head[8:11] != b"AVI":
            raise MediaError("not a valid AVI file")
        fmt = "AVI"
    return MediaInfo("video", fmt, _MIME[fmt], None, None)
