"""HTTP for remote connectors: one aiohttp session, errors classified once, retries with backoff.

Every connector talks to its server through these helpers so that "what is worth retrying" is
decided in one place: connection errors, timeouts, resets, truncated bodies, 408, 429 and 5xx
raise `RemoteError` (retryable, with the server's `Retry-After`); any other 4xx raises
`RemoteRefusedError` with the server's message; a body that is not the JSON the API promises
raises `MalformedResponseError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar

import aiohttp
import orjson

from gallerysync.errors import MalformedResponseError, RemoteError, RemoteRefusedError
from gallerysync.gc_pause import gc_paused

__all__ = [
    "CHUNK_SIZE",
    "HttpByteStream",
    "backoff_delay",
    "get_body",
    "get_json",
    "new_session",
    "open_stream",
    "status_error",
    "transport_error",
    "with_retries",
]

CHUNK_SIZE = 1 << 18
RETRYABLE_STATUS = frozenset({408, 429})
MAX_ERROR_TEXT = 300
T = TypeVar("T")


def new_session(*, headers: Mapping[str, str] | None = None, limit: int = 32) -> Any:
    """A session with timeouts fit for a source: connecting fails fast, a stalled read fails
    after a minute, a long download is never cut by a total timeout."""
    return aiohttp.ClientSession(
        headers=dict(headers or {}),
        timeout=aiohttp.ClientTimeout(total=None, connect=10, sock_connect=10, sock_read=60),
        connector=aiohttp.TCPConnector(limit=limit, limit_per_host=limit),
        auto_decompress=True,
    )


def _retry_after(value: str | None) -> float | None:
    """`Retry-After` in seconds: either a number or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    with contextlib.suppress(ValueError):
        return max(0.0, float(value))
    with contextlib.suppress(TypeError, ValueError):
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    return None


async def _raise_for_status(response: aiohttp.ClientResponse, what: str) -> None:
    if response.status < 400:
        return
    try:
        body = await response.read()
    except (TimeoutError, aiohttp.ClientError):
        body = b""
    raise status_error(response, body, what)


def status_error(
    response: aiohttp.ClientResponse, body: bytes, what: str
) -> RemoteError | RemoteRefusedError:
    """The error an HTTP error reply means: retry later (5xx, 408, 429 with its Retry-After)
    or refused. A gallerysync server's JSON error contributes its message and code."""
    text = body[:MAX_ERROR_TEXT].decode("utf-8", "replace").strip()
    code: str | None = None
    with contextlib.suppress(orjson.JSONDecodeError, KeyError, TypeError):
        error = orjson.loads(body)["error"]
        code, text = str(error["code"]), str(error["message"])
    message = f"{what}: HTTP {response.status} {response.reason or ''}".rstrip()
    if text:
        message += f" — {text}"
    if response.status >= 500 or response.status in RETRYABLE_STATUS:
        retry_after = _retry_after(response.headers.get("Retry-After"))
        return RemoteError(message, retry_after=retry_after)
    return RemoteRefusedError(message, http_status=response.status, remote_code=code)


def transport_error(what: str, exc: BaseException) -> RemoteError:
    detail = str(exc) or type(exc).__name__
    return RemoteError(f"{what}: {type(exc).__name__}: {detail}")


async def get_body(
    session: aiohttp.ClientSession,
    url: str,
    *,
    params: Mapping[str, str] | None = None,
    what: str,
    headers: Mapping[str, str] | None = None,
) -> bytes:
    """Fetch one reply whole (pages are small), errors classified; for a caller that decodes
    it itself."""
    try:
        async with session.get(url, params=params, headers=headers) as response:
            await _raise_for_status(response, what)
            body: bytes = await response.read()
            return body
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise transport_error(what, exc) from exc


async def get_json(
    session: aiohttp.ClientSession,
    url: str,
    *,
    params: Mapping[str, str] | None = None,
    what: str,
    headers: Mapping[str, str] | None = None,
) -> Any:
    """Fetch and parse one JSON document (orjson)."""
    body = await get_body(session, url, params=params, what=what, headers=headers)
    try:
        with gc_paused():
            return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedResponseError(f"{what}: the reply is not JSON ({exc})") from exc


class HttpByteStream:
    """A `ByteStream` over an aiohttp response (see `sources.base.ByteStream`)."""

    def __init__(self, response: aiohttp.ClientResponse, what: str) -> None:
        self._response = response
        self._what = what
        self.etag: str | None = response.headers.get("ETag")
        self.not_modified = response.status == 304
        length = response.headers.get("Content-Length")
        self.size: int | None = int(length) if length and length.isdigit() else None

    async def chunks(self) -> AsyncIterator[bytes]:
        received = 0
        try:
            async for chunk in self._response.content.iter_chunked(CHUNK_SIZE):
                received += len(chunk)
                yield chunk
        except aiohttp.ClientPayloadError as exc:
            of = f" of {self.size} announced" if self.size is not None else ""
            raise RemoteError(f"{self._what}: truncated, {received}{of} bytes ({exc})") from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise transport_error(f"{self._what} (after {received} bytes)", exc) from exc
        if self.size is not None and received != self.size:
            raise RemoteError(f"{self._what}: truncated, {received} of {self.size} announced bytes")


@contextlib.asynccontextmanager
async def open_stream(
    session: aiohttp.ClientSession,
    url: str,
    *,
    params: Mapping[str, str] | None = None,
    etag: str | None = None,
    what: str,
    headers: Mapping[str, str] | None = None,
) -> AsyncIterator[HttpByteStream]:
    headers = {**(headers or {}), **({"If-None-Match": etag} if etag else {})}
    try:
        async with session.get(url, params=params, headers=headers) as response:
            await _raise_for_status(response, what)
            yield HttpByteStream(response, what)
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise transport_error(what, exc) from exc


def backoff_delay(attempt: int, *, base: float, cap: float, retry_after: float | None) -> float:
    """Exponential backoff with full jitter; a server's `Retry-After` is a floor (capped)."""
    delay = random.uniform(0, min(cap, base * 2**attempt))
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap))
    return delay


async def with_retries(
    call: Callable[[], Awaitable[T]],
    *,
    attempts: int,
    base: float = 0.5,
    cap: float = 30.0,
    on_retry: Callable[[int, RemoteError, float], None] | None = None,
) -> T:
    """Run `call`, retrying `RemoteError` up to `attempts` times in all; anything else (a
    refusal, a malformed reply, a bug) is raised at once."""
    attempt = 0
    while True:
        try:
            return await call()
        except RemoteError as exc:
            attempt += 1
            if attempt >= attempts:
                raise
            delay = backoff_delay(attempt, base=base, cap=cap, retry_after=exc.retry_after)
            if on_retry is not None:
                on_retry(attempt, exc, delay)
            await asyncio.sleep(delay)
