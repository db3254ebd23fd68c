"""The ComfyUI double (`tests/doubles/comfyui.py`) in a process of its own.

The double is a uvicorn server in a background thread; in the bench's own process it would
share the interpreter lock with the engine under test (and not with the SQLite limit), so it
runs here, as a real ComfyUI would: a separate process on loopback. The bench drives it over
stdin/stdout, one JSON object per line:

    python bench/remote/double.py ROOT      # prints {"url": ...}, then answers requests

Requests: `{"op": "bulk", "count": N, "images": K, "content": "tiny" | "png", "bases": B,
"seed": S}` (`ComfyUIDouble.add_prompts_bulk`; "tiny": `run._tiny_png`, ~100 B; "png": noise
PNGs of ~200 KB, see `noise_pngs`), `{"op": "stats"}` (the double's `requests` counter,
`view_bytes_sent`, history length) and `{"op": "quit"}`.
"""

from __future__ import annotations

import io
import json
import os
import random
import struct
import sys
import zlib
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = BENCH_DIR.parent
if str(BENCH_DIR) not in sys.path:  # this file is also the child's script
    sys.path.insert(0, str(BENCH_DIR))

from childproc import JsonLineChild  # noqa: E402


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def noise_pngs(count: int, seed: int) -> list[bytes]:
    """Random-noise RGB PNGs of ~200 KB (256 x 256..272 pixels; noise does not compress)."""
    from PIL import Image

    rng = random.Random(seed)
    bases = []
    for _ in range(count):
        height = rng.randint(256, 272)
        image = Image.frombytes("RGB", (256, height), rng.randbytes(256 * height * 3))
        buffer = io.BytesIO()
        image.save(buffer, "PNG", compress_level=1)
        bases.append(buffer.getvalue())
    return bases


def unique_png(base: bytes, index: int) -> bytes:
    """`base` with a unique tEXt chunk right after IHDR (still a valid PNG, distinct bytes)."""
    assert base[:8] == b"\x89PNG\r\n\x1a\n" and base[12:16] == b"IHDR"
    cut = 8 + 4 + 4 + 13 + 4  # signature, IHDR length, type, data, CRC
    text = _png_chunk(b"tEXt", b"Comment\x00gallerysync remote bench %07d" % index)
    return base[:cut] + text + base[cut:]


def _serve(root: Path) -> int:
    sys.path[:0] = [str(REPO_DIR), str(BENCH_DIR)]
    import logging

    from tests.doubles.comfyui import ComfyUIDouble

    import run

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    out = sys.stdout

    def answer(body: dict[str, Any]) -> None:
        out.write(json.dumps(body) + "\n")
        out.flush()

    with ComfyUIDouble(root) as double:
        answer({"url": double.url, "pid": os.getpid()})
        for line in sys.stdin:
            request = json.loads(line)
            op = request["op"]
            if op == "quit":
                answer({"ok": True})
                break
            if op == "stats":
                answer(
                    {
                        "requests": dict(double.requests),
                        "view_bytes_sent": double.view_bytes_sent,
                        "history": len(double.history_ids()),
                    }
                )
            elif op == "bulk":
                if request["content"] == "png":
                    bases = noise_pngs(request["bases"], request["seed"])

                    def make(i: int, bases: list[bytes] = bases) -> bytes:
                        return unique_png(bases[i % len(bases)], i)
                else:
                    make = run._tiny_png
                ids = double.add_prompts_bulk(request["count"], request["images"], make)
                answer({"prompts": len(ids)})
            else:
                answer({"error": f"unknown op {op!r}"})
    return 0


class DoubleProcess(JsonLineChild):
    """The parent's handle on a ComfyUI double child process."""

    name = "ComfyUI double"

    def __init__(self, root: Path, log_path: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        super().__init__([sys.executable, str(Path(__file__).resolve()), str(root)], log_path)

    def stats(self) -> dict[str, Any]:
        return self.call("stats")

    def output_files(self) -> list[str]:
        folder = self.root / "output"
        return sorted(str(folder / name) for name in os.listdir(folder))


if __name__ == "__main__":
    sys.exit(_serve(Path(sys.argv[1])))
