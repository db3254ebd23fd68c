"""The bare upload server: the limit of the push figure, on the same stack as `serve`.

Run by the push suite as `python bench/push/bare.py MODE STORE HOST PORT` under uvicorn with
the settings `gallerysync serve` gives uvicorn (`runtime.py`). A Starlette app (the framework
under gallerysync's FastAPI) with `POST /upload`, which reads the request body as a stream
(`request.stream()`, as gallerysync's upload route does) and answers 201:

* `discard`: every chunk is dropped — what receiving the bytes over HTTP costs;
* `durable`: the chunks are BLAKE3-hashed as they arrive, then, in a worker thread, written to
  a temp file in STORE, fsynced, renamed to their hash and the directory fsynced — a verified
  content-addressed store made durable file by file (what `serve` must at least do too).

A standalone script: it imports nothing from the bench or from gallerysync.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _store(folder: Path, name: str, chunks: list[bytes], digest: str) -> None:
    temp = folder / f".tmp-{name}"
    with open(temp, "wb") as out:
        for chunk in chunks:
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temp, folder / digest)
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def bare_app(mode: str, store: Path) -> Any:
    from blake3 import blake3
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    count = 0

    async def upload(request: Request) -> Response:
        nonlocal count
        count += 1
        number = count  # this request's temp name: `count` moves on while the body arrives
        size = 0
        if mode == "discard":
            async for chunk in request.stream():
                size += len(chunk)
        else:
            hasher = blake3()
            chunks: list[bytes] = []
            async for chunk in request.stream():
                hasher.update(chunk)
                chunks.append(chunk)
                size += len(chunk)
            await asyncio.to_thread(_store, store, str(number), chunks, hasher.hexdigest())
        if size != int(request.headers["content-length"]):
            return Response(b'{"error": "short body"}', status_code=400)
        return Response(b'{"status": "created"}', status_code=201, media_type="application/json")

    async def health(_request: Request) -> Response:
        return Response(b"{}", media_type="application/json")

    return Starlette(routes=[Route("/health", health), Route("/upload", upload, methods=["POST"])])


def bare_server_main(argv: Sequence[str]) -> int:
    import uvicorn

    mode, store, host, port = argv
    assert mode in ("discard", "durable"), mode
    # The same settings `gallerysync serve` gives uvicorn (runtime.py).
    config = uvicorn.Config(
        bare_app(mode, Path(store)),
        host=host,
        port=int(port),
        log_level="warning",
        lifespan="off",
        access_log=False,
    )
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(bare_server_main(sys.argv[1:]))
