"""Pause Python's cyclic garbage collector while a bulk reply or bulk metas are decoded.

Decoding a 1 MB JSON page allocates tens of thousands of dicts and lists, and every 700
allocations CPython runs a collection that scans them (and, as the heap grows, older
generations too): measured on a 42 MB ComfyUI `/history` (before those pages were decoded with
msgspec), `orjson.loads` took twice as long with the collector running, and kept pages made it
6x. The decoded trees hold no cycles, so collecting during the decode finds nothing; the objects
are scanned once after it instead. Used by `sources.http.get_json` (peer and Stash pages) and
for the origin metas a download run reads in bulk.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["gc_paused"]


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Disable the collector for the block, then restore it if it was enabled (nested or
    concurrent uses end with it enabled again when any of them found it so)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
