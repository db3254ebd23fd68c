"""The Stash double (`FastStashDouble`, see `fast_double.py`) in a process of its own.

In the bench's process its uvicorn thread and graphql-core would share the interpreter lock
with the engine under test; here it runs as a real Stash would, a separate process on
loopback. The bench drives it over stdin/stdout, one JSON object per line:

    python bench/stash/double_main.py SIZES_JSON   # prints {"url", "pid", "api_key"}

Requests (each answered with one line):

- `{"op": "build"}`: make the library (`library.Library.build`), answer its counts;
- `{"op": "selfcheck"}`: `fast_double.compare_with_test_double()` (in this process);
- `{"op": "edit_images", "count": N}`, `{"op": "edit_gallery"}`: the edits of figures 3, 4;
- `{"op": "stats"}`: the double's `graphql_requests` and per-path `requests` counters;
- `{"op": "oracle", "path": P}`: `tests/sources/stash_support.oracle(double)` — what a
  catalog must hold of this library, from the double's rows alone — written to P as JSON;
- `{"op": "quit"}`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = BENCH_DIR.parent
API_KEY = "bench-stash-key"


def main(argv: list[str]) -> int:
    sys.path[:0] = [str(REPO_DIR), str(BENCH_DIR)]
    from stash.fast_double import FastStashDouble, compare_with_test_double
    from stash.library import Library
    from stash.sizes import StashSizes

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sizes = StashSizes(**json.loads(argv[0]))
    out = sys.stdout

    def answer(body: dict[str, Any]) -> None:
        out.write(json.dumps(body) + "\n")
        out.flush()

    with FastStashDouble(api_key=API_KEY, seed=sizes.seed) as double:
        library = Library(double, sizes)
        answer({"url": double.url, "pid": os.getpid(), "api_key": API_KEY})
        for line in sys.stdin:
            request = json.loads(line)
            op = request["op"]
            started = time.perf_counter()
            try:
                if op == "quit":
                    answer({"ok": True})
                    break
                if op == "build":
                    body = library.build()
                elif op == "selfcheck":
                    body = compare_with_test_double()
                elif op == "edit_images":
                    body = {"edits": library.edit_images(int(request["count"]))}
                elif op == "edit_gallery":
                    body = library.edit_gallery()
                elif op == "stats":
                    body = {
                        "graphql_requests": double.graphql_requests,
                        "requests": dict(double.requests),
                    }
                elif op == "oracle":
                    body = _oracle(double, Path(request["path"]))
                else:
                    body = {"error": f"unknown op {op!r}"}
            except Exception as exc:  # the bench reports it; the double keeps serving
                logging.exception("op %s failed", op)
                body = {"error": f"{op}: {type(exc).__name__}: {exc}"}
            answer({**body, "op_seconds": time.perf_counter() - started})
    return 0


def _oracle(double: Any, path: Path) -> dict[str, Any]:
    from tests.sources.stash_support import oracle

    expected = oracle(double)
    path.write_text(json.dumps(expected))
    return {"origins": len(expected["origins"]), "entities": len(expected["entities"])}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
