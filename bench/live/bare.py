"""The bare limit: a Starlette app with nothing but what each figure needs, all from memory.

Run by the live suite as `python bench/live/bare.py HOST PORT` under uvicorn with the settings
`gallerysync serve` gives uvicorn. A standalone script: it imports nothing from the bench.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from typing import Any


def sized_event(size: int, index: int) -> bytes:
    """An SSE change event of exactly `size` bytes (`size` >= 64)."""
    head = f"id: {index:019d}\nevent: change\ndata: ".encode()
    shell = b'{"pad":""}' + b"\n\n"
    return head + b'{"pad":"' + b"x" * (size - len(head) - len(shell)) + b'"}\n\n'


def bare_app() -> Any:
    """The limit: Starlette with nothing but what each figure needs, all from memory."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response, StreamingResponse
    from starlette.routing import Route

    queues: set[asyncio.Queue[bytes]] = set()
    files: dict[str, tuple[bytes, str]] = {}
    sse_headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}

    async def stream(_request: Request) -> StreamingResponse:
        queue: asyncio.Queue[bytes] = asyncio.Queue()

        async def events() -> Any:
            queues.add(queue)
            try:
                yield b"retry: 3000\n\n"
                yield b"event: up-to-date\ndata: {}\n\n"
                while True:
                    yield await queue.get()
            finally:
                queues.discard(queue)

        return StreamingResponse(events(), media_type="text/event-stream", headers=sse_headers)

    async def publish(request: Request) -> Response:
        body = await request.body()
        for queue in queues:
            queue.put_nowait(body)
        return Response(b'{"clients": %d}' % len(queues), media_type="application/json")

    async def backlog(request: Request) -> StreamingResponse:
        count = int(request.query_params["n"])
        size = int(request.query_params["size"])
        batch = int(request.query_params["batch"])

        async def events() -> Any:
            yield b"retry: 3000\n\n"
            for start in range(0, count, batch):
                yield b"".join(
                    sized_event(size, i) for i in range(start, min(count, start + batch))
                )
            yield b"event: up-to-date\ndata: {}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream", headers=sse_headers)

    async def put_file(request: Request) -> Response:
        name = request.path_params["name"]
        files[name] = (await request.body(), request.headers["content-type"])
        return Response(b"{}", media_type="application/json")

    async def get_file(request: Request) -> Response:
        body, media_type = files[request.path_params["name"]]
        return Response(body, media_type=media_type)

    async def health(_request: Request) -> Response:
        return Response(b"{}", media_type="application/json")

    return Starlette(
        routes=[
            Route("/health", health),
            Route("/stream", stream),
            Route("/publish", publish, methods=["POST"]),
            Route("/backlog", backlog),
            Route("/files/{name}", put_file, methods=["PUT"]),
            Route("/files/{name}", get_file),
        ]
    )


def bare_server_main(argv: Sequence[str]) -> int:
    import uvicorn

    # The same settings `gallerysync serve` gives uvicorn (runtime.py).
    config = uvicorn.Config(
        bare_app(),
        host=argv[0],
        port=int(argv[1]),
        log_level="warning",
        lifespan="off",
        access_log=False,
    )
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(bare_server_main(sys.argv[1:]))
