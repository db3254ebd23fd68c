"""A faithful test double of the ComfyUI HTTP + websocket API (ComfyUI 0.3.x, pinned to 0.3.75).

The double is a raw ASGI app built from Starlette primitives, served by a real uvicorn on
127.0.0.1 in a background thread. Tests, benchmarks and people running it by hand drive it
through :class:`ComfyUIDouble` (``python -m tests.doubles.comfyui --help``).

Real code followed (every route docstring below names the exact function it ports):

* ``aajonaa/ComfyUI`` @ ``499b34f6f2005fcf29ae27010a5ba954af56e3dd`` — an unmodified snapshot of
  ComfyUI **v0.3.75** (``comfyui_version.py``):

  - ``server.py``: ``create_origin_only_middleware``/``is_loopback``/``create_cors_middleware``,
    ``PromptServer.__init__`` (middleware choice: CORS when ``--enable-cors-header``, else
    origin-only), ``websocket_handler`` (``/ws``), ``view_image`` (``/view``),
    ``get_history``/``get_history_prompt_id``/``post_history`` (``/history``),
    ``get_queue``/``post_queue`` (``/queue``), ``get_prompt`` (GET ``/prompt``),
    ``system_stats``, ``get_features``, ``add_routes`` (every route also under ``/api``),
    ``get_queue_info``, ``send_json`` (``sid=None`` broadcasts to ``self.sockets``),
    ``send_sync``/``publish_loop``/``queue_updated``.
  - ``execution.py``: ``MAXIMUM_HISTORY_SIZE = 10000``; ``PromptQueue.put``/``get``/``task_done``
    (oldest popped *before* inserting when ``len > MAXIMUM_HISTORY_SIZE``, so the steady state
    is 10,001), ``get_history(prompt_id, max_items, offset=-1)``, ``wipe_history``,
    ``delete_history_item``; ``PromptExecutor.add_message`` (``timestamp`` in ms, stored as
    ``(event, data)`` pairs in ``status.messages``), ``execute_async`` (``execution_start``,
    ``execution_cached``, ``execution_success``; ``history_result = {"outputs", "meta"}``),
    ``execute`` (``meta = {node_id, display_node, parent_node, real_node_id}``; a cached node's UI
    is only re-used when the prompt has a ``client_id``), ``handle_execution_error``
    (``execution_error`` to the client only, ``execution_interrupted`` broadcast).
  - ``main.py``: ``prompt_worker`` (``status_str``/``completed``/``messages``; sensitive
    ``extra_data`` removed via ``process_item`` so ``prompt`` is the 5-list; ``executing`` with
    ``node: None`` after ``task_done``), ``start_comfyui``/``cleanup_temp`` (``temp/`` wiped at
    every start).
  - ``folder_paths.py``: ``get_output_directory``/``get_temp_directory``/
    ``get_input_directory``/``get_directory_by_type``/``annotated_filepath``/
    ``get_save_image_path`` (``{prefix}_{counter:05}_.png`` counter).
  - ``nodes.py``: ``SaveImage.save_images`` / ``PreviewImage`` (``{"ui": {"images": [{filename,
    subfolder, type}]}}``, ``type`` ``output``/``temp``).
  - ``middleware/cache_middleware.py``: no cache headers for ``/view`` (path has no image suffix).
  - ``comfy_api/feature_flags.py``: ``SERVER_FEATURE_FLAGS`` (``/features``, ws negotiation).

* ``aiohttp`` 3.14.5 (``aio-libs/aiohttp``, read from the installed wheel):
  ``aiohttp/web_fileresponse.py`` (``FileResponse``: ETag ``"{mtime_ns:x}-{size:x}"``,
  If-Match/If-Unmodified-Since → 412, If-None-Match/If-Modified-Since → 304, If-Range, Range →
  206, 416 with ``Content-Range: bytes */size``, ``.br``/``.gz`` siblings, Accept-Ranges),
  ``aiohttp/web_request.py`` (``http_range``, ``_etag_values``, ``if_*`` parsing),
  ``aiohttp/helpers.py`` (``parse_http_date``, ETag regexes, ``must_be_empty_body``),
  ``aiohttp/web_response.py`` (``last_modified`` rounding up, 304 drops Content-Length),
  ``aiohttp/web_protocol.py`` (``handle_error``: ``500 Internal Server Error\\n\\nServer got
  itself in trouble``), ``aiohttp/web_exceptions.py`` (``404: Not Found``/``405: Method Not
  Allowed``).

* ``Comfy-Org/ComfyUI`` (``server.py``/``execution.py`` of the newest stored commit) was read to
  note where later releases differ; see the final section of this docstring.

Deviations that are the double's own (not ComfyUI's):

* JSON bodies are produced with orjson (compact) where aiohttp's ``json_response`` uses
  ``json.dumps`` (``", "``/``": "``, ASCII escapes): same JSON values, different bytes. Websocket
  messages use ``json.dumps`` exactly like aiohttp's ``send_json``.
* Prompts are not executed: :meth:`ComfyUIDouble.add_prompt` appends the history entry that
  ``task_done`` would and sends the websocket messages the run would (``status`` ×3 broadcast;
  ``execution_*``/``executing``/``executed``/``progress`` to the submitting ``client_id`` only).
  ``progress_state`` messages and binary previews are not simulated. POST ``/prompt`` is not
  implemented (405).
* uvicorn here has neither ``websockets`` nor ``wsproto``, so ``/ws`` runs on a minimal RFC 6455
  protocol (:class:`_WebSocketProtocol`); it does not negotiate permessage-deflate (aiohttp would
  when the client offers it).
* :meth:`ComfyUIDouble.stop` drops every connection like a killed process (no websocket close
  frame); ``requests`` counts by route path, ``/api/x`` counted as ``/x``.
* :meth:`ComfyUIDouble.write_file` guarantees a new ``mtime_ns`` (so a new ETag) when it
  rewrites a file; a real filesystem can keep it when a same-size rewrite lands in one clock tick.

Where ComfyUI versions differ (the double follows 0.3.75):

* Reusing the ``clientId`` of an open socket: the new socket replaces the old one in
  ``sockets`` (the old one stays open and receives nothing more); when the *old* one closes, its
  ``finally: self.sockets.pop(sid)`` removes the *new* one, which then receives nothing either.
  (Newest ComfyUI tracks socket generations and fixes this.)
* Every prompt sends ``status`` three times: ``queue_remaining`` 1 (``put``), 1 (``get``:
  ``len(queue) + len(currently_running)``), 0 (``task_done``).
* A client that did not submit the prompt receives only ``status`` — unless the prompt has no
  ``client_id``: then ``execution_interrupted`` (``broadcast=True``) and sampler ``progress``
  messages go to every socket. In 0.3.44–0.3.56 ``progress_state`` was broadcast to everybody
  too (fixed by Comfy-Org/ComfyUI#9706).
* ``/view`` with an empty ``filename`` → 400 (``if not filename``); releases before that check
  raised ``IndexError`` on ``filename[0]`` → 500. No ``filename`` parameter at all → 404.
* Newest ComfyUI escapes ``"`` in ``Content-Disposition``, adds ``X-Content-Type-Options:
  nosniff`` and an ``attachment`` disposition for active content types; 0.3.75 sends
  ``filename="{name}"`` and forces ``application/octet-stream`` for html/js/css types.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import copy
import datetime
import hashlib
import http
import io
import ipaddress
import json
import logging
import math
import mimetypes
import os
import random
import re
import shutil
import socket
import stat
import struct
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import orjson
import uvicorn
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.server import ServerState

__all__ = ["COMFYUI_VERSION", "MAXIMUM_HISTORY_SIZE", "ComfyUIDouble", "Faults"]

log = logging.getLogger(__name__)

COMFYUI_VERSION: Final = "0.3.75"
# execution.py: MAXIMUM_HISTORY_SIZE = 10000
MAXIMUM_HISTORY_SIZE: Final = 10_000
# comfy_api/feature_flags.py: SERVER_FEATURE_FLAGS (max_upload_size = --max-upload-size 100 MB)
SERVER_FEATURE_FLAGS: Final[dict[str, Any]] = {
    "supports_preview_metadata": True,
    "max_upload_size": 100 * 1024 * 1024,
}


def _aiohttp_server_software() -> str:
    """aiohttp/http.py SERVER_SOFTWARE, the ``Server`` header of every aiohttp response."""
    try:
        from importlib.metadata import version

        aiohttp_version = version("aiohttp")
    except Exception:
        aiohttp_version = "3.11.18"
    return f"Python/{sys.version_info[0]}.{sys.version_info[1]} aiohttp/{aiohttp_version}"


SERVER_SOFTWARE: Final = _aiohttp_server_software()


# ---------------------------------------------------------------------------------------------
# Faults
# ---------------------------------------------------------------------------------------------


@dataclass
class _Fault:
    kind: str  # fail | reset | truncate | delay | malformed_json
    path: str
    remaining: int
    status: int = 500
    retry_after: float | None = None
    body: bytes = b""
    seconds: float = 0.0


class Faults:
    """Injected failures. Thread-safe.

    Each fault applies to the next ``count`` requests whose path starts with ``path`` (the
    ``/api`` prefix is ignored, so ``"/view"`` also matches ``/api/view``), then clears itself.
    When several faults match one request the oldest one applies. ``/ws`` upgrades take
    ``fail``/``delay``/``reset_mid_body``/``truncate``; ``malformed_json`` only applies to HTTP.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[_Fault] = []

    def _add(self, fault: _Fault) -> None:
        if fault.remaining < 1:
            raise ValueError("count must be >= 1")
        with self._lock:
            self._faults.append(fault)

    def fail(
        self,
        path: str,
        count: int = 1,
        status: int = 500,
        retry_after: float | None = None,
        body: bytes = b"",
    ) -> None:
        """Answer with ``status`` (and ``Retry-After`` when given, e.g. 429) without routing."""
        self._add(_Fault("fail", path, count, status=status, retry_after=retry_after, body=body))

    def reset_mid_body(self, path: str, count: int = 1) -> None:
        """Send the real headers (Content-Length N) and half the body, then reset the TCP
        connection (SO_LINGER 0): the client sees a connection/payload error."""
        self._add(_Fault("reset", path, count))

    def truncate(self, path: str, count: int = 1) -> None:
        """Send the real headers (Content-Length N), fewer than N bytes, then close (FIN)."""
        self._add(_Fault("truncate", path, count))

    def delay(self, path: str, seconds: float, count: int = 1) -> None:
        """Wait ``seconds`` before handling the request normally."""
        self._add(_Fault("delay", path, count, seconds=seconds))

    def malformed_json(self, path: str, count: int = 1) -> None:
        """Answer 200 ``application/json`` with a body that is not valid JSON."""
        self._add(_Fault("malformed_json", path, count))

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def pending(self) -> list[tuple[str, str, int]]:
        """(kind, path, remaining count) of every fault not used up yet, oldest first."""
        with self._lock:
            return [(f.kind, f.path, f.remaining) for f in self._faults]

    def _take(self, path: str, *, websocket: bool) -> _Fault | None:
        stripped = path[4:] if path.startswith("/api/") else path
        with self._lock:
            for fault in self._faults:
                if websocket and fault.kind == "malformed_json":
                    continue
                if path.startswith(fault.path) or stripped.startswith(fault.path):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return copy.copy(fault)
        return None


# ---------------------------------------------------------------------------------------------
# A minimal RFC 6455 server protocol for uvicorn (no `websockets`/`wsproto` installed)
# ---------------------------------------------------------------------------------------------

_WS_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# aiohttp WebSocketResponse default max_msg_size (4 MiB): larger messages close with 1009.
_WS_MAX_MESSAGE: Final = 4 * 1024 * 1024


def _ws_frame(opcode: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + payload


def _status_line(status: int) -> bytes:
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    return f"HTTP/1.1 {status} {phrase}".encode("latin-1")


class _WebSocketProtocol(asyncio.Protocol):
    """Server side of RFC 6455 as a uvicorn ``ws`` protocol class, speaking ASGI websocket.

    uvicorn's h11 protocol hands the upgrade request over (it replays the request head through
    ``data_received``). Supports text/binary/continuation/close/ping/pong frames, the
    ``websocket.http.response`` extension (denial responses) and, like uvicorn's own protocols,
    ``websocket.close`` before accept → HTTP 403.
    """

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not config.loaded:
            config.load()
        self.config = config
        self.app = config.loaded_app
        self.loop = _loop or asyncio.get_event_loop()
        self.app_state = app_state
        self.server_state = server_state
        self.transport: asyncio.Transport | None = None
        self.client: tuple[str, int] | None = None
        self.server: tuple[str, int] | None = None
        self.scope: Scope = {}
        self._buffer = bytearray()
        self._request_seen = False
        self._accepted = False
        self._response_started = False
        self._close_sent = False
        self._disconnected = False
        self._queue: asyncio.Queue[Message] = asyncio.Queue()
        self._fragments: list[bytes] = []
        self._fragment_opcode = 0
        self._key = b""
        self._pending_denial: tuple[int, list[tuple[bytes, bytes]]] = (500, [])
        self._denial_body = b""

    # asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server_state.connections.add(self)  # type: ignore[arg-type]
        peer = transport.get_extra_info("peername")
        local = transport.get_extra_info("sockname")
        self.client = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else None
        self.server = (str(local[0]), int(local[1])) if isinstance(local, tuple) else None

    def connection_lost(self, exc: Exception | None) -> None:
        self.server_state.connections.discard(self)
        if not self._disconnected:
            self._disconnected = True
            self._queue.put_nowait({"type": "websocket.disconnect", "code": 1006})

    def eof_received(self) -> bool | None:
        return None

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if not self._request_seen:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > 65536:
                    self._write_http(431, [], b"")
                return
            head = bytes(self._buffer[:end])
            del self._buffer[: end + 4]
            self._request_seen = True
            self._handle_request(head)
            return
        if self._accepted:
            self._parse_frames()

    def shutdown(self) -> None:
        """Called by uvicorn's shutdown: drop the connection (no close frame)."""
        if self.transport is not None:
            self.transport.close()

    def pause_writing(self) -> None:
        pass

    def resume_writing(self) -> None:
        pass

    # handshake ------------------------------------------------------------------------------

    def _handle_request(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        try:
            _method, target, _version = lines[0].split(b" ", 2)
        except ValueError:
            self._write_http(400, [], b"")
            return
        headers: list[tuple[bytes, bytes]] = []
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers.append((name.strip().lower(), value.strip()))
        first: dict[bytes, bytes] = {}
        for name, value in headers:
            first.setdefault(name, value)
        raw_path, _, query = target.partition(b"?")
        protocols = first.get(b"sec-websocket-protocol", b"").decode("latin-1")
        self.scope = {
            "type": "websocket",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": "ws",
            "server": self.server,
            "client": self.client,
            "root_path": "",
            "path": urllib.parse.unquote(raw_path.decode("latin-1")),
            "raw_path": raw_path,
            "query_string": query,
            "headers": headers,
            "subprotocols": [p.strip() for p in protocols.split(",") if p.strip()],
            "state": self.app_state.copy(),
            "extensions": {"websocket.http.response": {}},
        }
        self._key = first.get(b"sec-websocket-key", b"")
        if not self._key or first.get(b"sec-websocket-version") != b"13":
            # aiohttp's ws.prepare() → HTTPBadRequest
            self._write_http(400, [(b"content-type", b"text/plain; charset=utf-8")], b"")
            return
        self._queue.put_nowait({"type": "websocket.connect"})
        task = self.loop.create_task(self._run_asgi())
        self.server_state.tasks.add(task)
        task.add_done_callback(self.server_state.tasks.discard)

    def _default_headers(self) -> list[tuple[bytes, bytes]]:
        return list(self.server_state.default_headers)

    def _write_http(
        self, status: int, headers: list[tuple[bytes, bytes]], body: bytes, *, close: bool = True
    ) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self._response_started = True
        names = {name.lower() for name, _ in headers}
        out = [_status_line(status)]
        for name, value in [*self._default_headers(), *headers]:
            out.append(name + b": " + value)
        if b"content-length" not in names and b"transfer-encoding" not in names:
            out.append(b"content-length: " + str(len(body)).encode())
        out.append(b"connection: close")
        self.transport.write(b"\r\n".join(out) + b"\r\n\r\n" + body)
        if close:
            self.transport.close()

    # frames -----------------------------------------------------------------------------------

    def _parse_frames(self) -> None:
        buf = self._buffer
        while not self._close_sent:
            if len(buf) < 2:
                return
            b0, b1 = buf[0], buf[1]
            fin, opcode, masked, length = b0 & 0x80, b0 & 0x0F, b1 & 0x80, b1 & 0x7F
            pos = 2
            if length == 126:
                if len(buf) < 4:
                    return
                length = struct.unpack_from("!H", buf, 2)[0]
                pos = 4
            elif length == 127:
                if len(buf) < 10:
                    return
                length = struct.unpack_from("!Q", buf, 2)[0]
                pos = 10
            if length > _WS_MAX_MESSAGE:
                self._fail(1009)
                return
            if masked:
                if len(buf) < pos + 4:
                    return
                mask = bytes(buf[pos : pos + 4])
                pos += 4
            if len(buf) < pos + length:
                return
            payload = bytes(buf[pos : pos + length])
            del buf[: pos + length]
            if not masked:
                self._fail(1002)  # RFC 6455 5.1: client frames must be masked
                return
            if length:
                key = (mask * (length // 4 + 1))[:length]
                payload = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(
                    length, "big"
                )
            self._handle_frame(bool(fin), opcode, payload)

    def _handle_frame(self, fin: bool, opcode: int, payload: bytes) -> None:
        if opcode in (0x1, 0x2):
            if self._fragments:
                self._fail(1002)
                return
            if fin:
                self._deliver(opcode, payload)
            else:
                self._fragment_opcode = opcode
                self._fragments = [payload]
        elif opcode == 0x0:
            if not self._fragments:
                self._fail(1002)
                return
            self._fragments.append(payload)
            if sum(len(p) for p in self._fragments) > _WS_MAX_MESSAGE:
                self._fail(1009)
                return
            if fin:
                data = b"".join(self._fragments)
                self._fragments = []
                self._deliver(self._fragment_opcode, data)
        elif opcode == 0x8:
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
            reason = payload[2:].decode("utf-8", "replace")
            if not self._close_sent:
                self._close_sent = True
                echo = struct.pack("!H", code) if code != 1005 else b""
                self._write(_ws_frame(0x8, echo))
            self._disconnect(code, reason)
            if self.transport is not None:
                self.transport.close()
        elif opcode == 0x9:
            self._write(_ws_frame(0xA, payload))
        elif opcode == 0xA:
            pass
        else:
            self._fail(1002)

    def _deliver(self, opcode: int, data: bytes) -> None:
        if opcode == 0x1:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                self._fail(1007)
                return
            self._queue.put_nowait({"type": "websocket.receive", "text": text})
        else:
            self._queue.put_nowait({"type": "websocket.receive", "bytes": data})

    def _disconnect(self, code: int, reason: str = "") -> None:
        if not self._disconnected:
            self._disconnected = True
            self._queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})

    def _fail(self, code: int) -> None:
        if not self._close_sent:
            self._close_sent = True
            self._write(_ws_frame(0x8, struct.pack("!H", code)))
        self._disconnect(code)
        if self.transport is not None:
            self.transport.close()

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    # ASGI -------------------------------------------------------------------------------------

    async def _run_asgi(self) -> None:
        try:
            await self.app(self.scope, self._receive, self._send)
        except ClientDisconnected:
            pass
        except BaseException:
            log.exception("Exception in ASGI websocket application")
            if not self._accepted and not self._response_started:
                self._write_http(500, [], b"")
        finally:
            if self._accepted and not self._close_sent and not self._disconnected:
                self._close_sent = True
                self._write(_ws_frame(0x8, struct.pack("!H", 1000)))
            if self.transport is not None and not self.transport.is_closing():
                self.transport.close()

    async def _receive(self) -> Message:
        return await self._queue.get()

    async def _send(self, message: Message) -> None:
        if self._disconnected or self.transport is None or self.transport.is_closing():
            raise ClientDisconnected()
        kind = message["type"]
        if kind == "websocket.accept":
            accept = base64.b64encode(hashlib.sha1(self._key + _WS_GUID).digest())
            out = [
                _status_line(101),
                b"Upgrade: websocket",
                b"Connection: upgrade",
                b"Sec-WebSocket-Accept: " + accept,
            ]
            if message.get("subprotocol"):
                out.append(b"Sec-WebSocket-Protocol: " + str(message["subprotocol"]).encode())
            for name, value in [*self._default_headers(), *message.get("headers", [])]:
                out.append(bytes(name) + b": " + bytes(value))
            self.transport.write(b"\r\n".join(out) + b"\r\n\r\n")
            self._accepted = True
            if self._buffer:
                self._parse_frames()
        elif kind == "websocket.send":
            if message.get("bytes") is not None:
                self._write(_ws_frame(0x2, bytes(message["bytes"])))
            else:
                self._write(_ws_frame(0x1, str(message.get("text", "")).encode("utf-8")))
        elif kind == "websocket.close":
            if not self._accepted:
                self._write_http(403, [], b"")
                return
            if not self._close_sent:
                self._close_sent = True
                reason = str(message.get("reason") or "").encode("utf-8")[:123]
                code = int(message.get("code", 1000))
                self._write(_ws_frame(0x8, struct.pack("!H", code) + reason))
            self.transport.close()
        elif kind == "websocket.http.response.start":
            headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", [])]
            self._pending_denial = (int(message["status"]), headers)
        elif kind == "websocket.http.response.body":
            status, headers = self._pending_denial
            self._denial_body += bytes(message.get("body", b""))
            if not message.get("more_body", False):
                self._write_http(status, headers, self._denial_body)


# ---------------------------------------------------------------------------------------------
# aiohttp FileResponse semantics (aiohttp/web_fileresponse.py, web_request.py, helpers.py)
# ---------------------------------------------------------------------------------------------

# helpers.py
_ETAGC = r"[!\x23-\x7E\x80-\xff]+"
_QUOTED_ETAG = rf'(W/)?"({_ETAGC})"'
_LIST_QUOTED_ETAG_RE = re.compile(rf"({_QUOTED_ETAG})(?:\s*,\s*|$)|(.)")
_ETAG_ANY = "*"
# web_fileresponse.py ENCODING_EXTENSIONS (checked in this order)
_ENCODING_EXTENSIONS: Final = ((".br", "br"), (".gz", "gzip"))
_CHUNK: Final = 256 * 1024


@dataclass(frozen=True)
class _ETag:
    value: str
    is_weak: bool = False


def _parse_etags(header: str | None) -> tuple[_ETag, ...] | None:
    """web_request.py ``_if_match_or_none_impl``/``_etag_values``."""
    if not header:
        return None
    if header == _ETAG_ANY:
        return (_ETag(_ETAG_ANY),)
    out: list[_ETag] = []
    for match in _LIST_QUOTED_ETAG_RE.finditer(header):
        is_weak, value, garbage = match.group(2, 3, 4)
        if garbage:
            break
        out.append(_ETag(value, bool(is_weak)))
    return tuple(out)


def _etag_match(etag_value: str, etags: tuple[_ETag, ...], *, weak: bool) -> bool:
    """web_fileresponse.py ``FileResponse._etag_match``."""
    if len(etags) == 1 and etags[0].value == _ETAG_ANY:
        return True
    return any(e.value == etag_value for e in etags if weak or not e.is_weak)


def _parse_http_date(value: str | None) -> datetime.datetime | None:
    """helpers.py ``parse_http_date``."""
    if value is not None:
        timetuple = parsedate(value)
        if timetuple is not None:
            try:
                return datetime.datetime(*timetuple[:6], tzinfo=datetime.UTC)
            except ValueError:
                return None
    return None


def _http_range(header: str | None) -> tuple[int | None, int | None]:
    """web_request.py ``BaseRequest.http_range`` (raises ValueError like it does)."""
    start: int | None = None
    end: int | None = None
    if header is not None:
        found = re.findall(r"^bytes=(\d*)-(\d*)$", header, re.ASCII | re.IGNORECASE)
        if not found:
            raise ValueError("range not in acceptable format")
        raw_start, raw_end = found[0]
        end = int(raw_end) if raw_end else None
        start = int(raw_start) if raw_start else None
        if start is None and end is not None:
            start = -end
            end = None
        if start is not None and end is not None:
            end += 1
            if start >= end:
                raise ValueError("start cannot be after end")
        if start is None and end is None:
            raise ValueError("No start or end of range specified")
    return start, end


def _last_modified(mtime: float) -> bytes:
    """web_response.py ``last_modified`` setter for a float: rounded *up* to the second."""
    return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(math.ceil(mtime))).encode()


def _header_map(scope: Scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in scope.get("headers", []):
        out.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return out


def _query(scope: Scope) -> dict[str, str]:
    """First value wins, blank values kept — like yarl's ``MultiDict.get``."""
    out: dict[str, str] = {}
    raw = scope.get("query_string", b"").decode("latin-1")
    for key, value in urllib.parse.parse_qsl(raw, keep_blank_values=True):
        out.setdefault(key, value)
    return out


async def _send_file(
    scope: Scope, send: Send, path: str, base_headers: list[tuple[bytes, bytes]]
) -> None:
    """``aiohttp.web.FileResponse(path, headers=...)`` as ComfyUI's ``/view`` returns it."""
    req = _header_map(scope)
    method = scope.get("method", "GET")
    headers = list(base_headers)

    async def respond(status: int, extra: list[tuple[bytes, bytes]], body: bytes = b"") -> None:
        await send({"type": "http.response.start", "status": status, "headers": headers + extra})
        await send({"type": "http.response.body", "body": body if method != "HEAD" else b""})

    accept_encoding = req.get("accept-encoding", "").lower()
    file_path = path
    file_encoding: str | None = None
    try:
        st: os.stat_result | None = None
        for extension, encoding in _ENCODING_EXTENSIONS:
            if encoding not in accept_encoding:
                continue
            try:
                candidate = os.lstat(path + extension)
            except OSError:
                continue
            if stat.S_ISREG(candidate.st_mode):
                file_path, st, file_encoding = path + extension, candidate, encoding
                break
        if st is None:
            st = os.stat(path)
            if not stat.S_ISREG(st.st_mode):
                await respond(403, [])
                return
        etag_value = f"{st.st_mtime_ns:x}-{st.st_size:x}"
        if_match = _parse_etags(req.get("if-match"))
        if if_match is not None and not _etag_match(etag_value, if_match, weak=False):
            await respond(412, [(b"content-length", b"0")])
            return
        unmodified = _parse_http_date(req.get("if-unmodified-since"))
        if unmodified is not None and if_match is None and st.st_mtime > unmodified.timestamp():
            await respond(412, [(b"content-length", b"0")])
            return
        if_none_match = _parse_etags(req.get("if-none-match"))
        modified = _parse_http_date(req.get("if-modified-since"))
        if (if_none_match is not None and _etag_match(etag_value, if_none_match, weak=True)) or (
            modified is not None and if_none_match is None and st.st_mtime <= modified.timestamp()
        ):
            await send(
                {
                    "type": "http.response.start",
                    "status": 304,
                    "headers": [
                        *headers,
                        (b"etag", f'"{etag_value}"'.encode()),
                        (b"last-modified", _last_modified(st.st_mtime)),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        fobj = open(file_path, "rb")  # noqa: SIM115 - closed in the finally below
    except PermissionError:
        await respond(403, [])
        return
    except OSError:
        await respond(404, [])
        return

    try:
        with contextlib.suppress(OSError):  # the open file's own stat, as aiohttp does
            st = os.fstat(fobj.fileno())
        size = st.st_size
        status = 200
        count = size
        start: int | None = None
        if_range = _parse_http_date(req.get("if-range"))
        if if_range is None or st.st_mtime <= if_range.timestamp():
            try:
                start, end = _http_range(req.get("range"))
            except ValueError:
                await respond(416, [(b"content-range", f"bytes */{size}".encode())])
                return
            if start is not None:
                if start < 0 and end is None:
                    start += size
                    if start < 0:
                        start = 0
                    count = size - start
                else:
                    count = min(end if end is not None else size, size) - start
                if start >= size:
                    await respond(416, [(b"content-range", f"bytes */{size}".encode())])
                    return
                status = 206
        names = {name for name, _ in headers}
        extra: list[tuple[bytes, bytes]] = []
        if b"content-type" not in names:
            guessed = mimetypes.guess_type(path)[0] or "application/octet-stream"
            extra.append((b"content-type", guessed.encode()))
        if file_encoding:
            extra += [(b"content-encoding", file_encoding.encode()), (b"vary", b"Accept-Encoding")]
        extra += [
            (b"etag", f'"{st.st_mtime_ns:x}-{st.st_size:x}"'.encode()),
            (b"last-modified", _last_modified(st.st_mtime)),
            (b"content-length", str(count).encode()),
            (b"accept-ranges", b"bytes"),
        ]
        if status == 206:
            assert start is not None
            extra.append((b"content-range", f"bytes {start}-{start + count - 1}/{size}".encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers + extra})
        if method == "HEAD" or count == 0:
            await send({"type": "http.response.body", "body": b""})
            return
        fobj.seek(start or 0)
        remaining = count
        while remaining > 0:
            chunk = fobj.read(min(_CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": remaining > 0})
        if remaining > 0:  # file shrank under us: aiohttp would leave the body short as well
            await send({"type": "http.response.body", "body": b""})
    finally:
        fobj.close()


# ---------------------------------------------------------------------------------------------
# Simple responses
# ---------------------------------------------------------------------------------------------

_JSON_TYPE: Final = "application/json; charset=utf-8"


def _json(data: Any, status: int = 200) -> Response:
    """``web.json_response(data)`` (bytes from orjson, see the module docstring)."""
    return Response(orjson.dumps(data), status_code=status, headers={"content-type": _JSON_TYPE})


def _empty(status: int = 200) -> Response:
    """``web.Response(status=...)``: Content-Length 0, no Content-Type."""
    return Response(status_code=status)


def _aiohttp_error(status: int, allow: str | None = None) -> Response:
    """aiohttp HTTPException body ``"{status}: {reason}"`` (web_exceptions.py)."""
    headers = {"content-type": "text/plain; charset=utf-8"}
    if allow is not None:
        headers["allow"] = allow
    text = f"{status}: {http.HTTPStatus(status).phrase}"
    return Response(text.encode(), status_code=status, headers=headers)


def _server_error(scope: Scope) -> Response:
    """web_protocol.py ``RequestHandler.handle_error`` for an unhandled exception."""
    title = "500 Internal Server Error"
    msg = "Server got itself in trouble"
    if "text/html" in _header_map(scope).get("accept", ""):
        body = (
            f"<html><head><title>{title}</title></head><body>\n<h1>{title}</h1>\n{msg}\n"
            "</body></html>\n"
        )
        ctype = "text/html; charset=utf-8"
    else:
        body = f"{title}\n\n{msg}"
        ctype = "text/plain; charset=utf-8"
    return Response(
        body.encode(), status_code=500, headers={"content-type": ctype, "connection": "close"}
    )


def _is_loopback(host: str | None) -> bool:
    """server.py ``is_loopback``."""
    if host is None:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    loopback = False
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            infos = socket.getaddrinfo(host, None, family, socket.SOCK_STREAM)
            for _family, _type, _proto, _name, sockaddr in infos:
                if not ipaddress.ip_address(sockaddr[0]).is_loopback:
                    return loopback
                loopback = True
        except socket.gaierror:
            pass
    return loopback


def _origin_forbidden(headers: dict[str, str]) -> bool:
    """server.py ``create_origin_only_middleware``: True → ``web.Response(status=403)``."""
    if "host" in headers and "origin" in headers:
        host = headers["host"]
        origin = headers["origin"]
        host_domain: str | None = host.lower()
        parsed = urllib.parse.urlparse(origin)
        origin_domain: str | None = parsed.netloc.lower()
        host_domain_parsed = urllib.parse.urlsplit("//" + host.lower())
        loopback = _is_loopback(host_domain_parsed.hostname)
        if parsed.port is None:
            host_domain = host_domain_parsed.hostname
        if host_domain_parsed.port is None:
            origin_domain = parsed.hostname
        if (
            loopback
            and host_domain is not None
            and origin_domain is not None
            and len(host_domain) > 0
            and len(origin_domain) > 0
            and host_domain != origin_domain
        ):
            log.warning(
                "WARNING: request with non matching host and origin %s != %s, returning 403",
                host_domain,
                origin_domain,
            )
            return True
    return False


# ---------------------------------------------------------------------------------------------
# Prompt graphs, workflows and outputs as ComfyUI produces them
# ---------------------------------------------------------------------------------------------

# Node ids the double adds for extra outputs / a failing branch (kept clear of the default
# workflow's 3..9).
_TEXT_NODE, _AUDIO_NODE, _ANIM_NODE, _AUDIO_SRC_NODE = "20", "21", "22", "23"
_FAIL_NODE, _FAIL_SAVE_NODE = "30", "31"
_OUTPUT_CLASSES: Final = frozenset(
    {
        "SaveImage",
        "PreviewImage",
        "SaveAnimatedWEBP",
        "SaveAnimatedPNG",
        "SaveAudio",
        "PreviewAudio",
        "PreviewAny",
        "SaveVideo",
    }
)


def _node(class_type: str, title: str, inputs: dict[str, Any]) -> dict[str, Any]:
    # the frontend's graphToPrompt adds _meta.title to every API-format node
    return {"inputs": inputs, "class_type": class_type, "_meta": {"title": title}}


def default_graph(
    node_id: str = "9",
    *,
    type: str = "output",
    failing: bool = False,
    extra_outputs: bool = False,
    seed: int | None = None,
) -> dict[str, Any]:
    """The API-format prompt of ComfyUI's default workflow (checkpoint → KSampler → save)."""
    graph: dict[str, Any] = {
        "3": _node(
            "KSampler",
            "KSampler",
            {
                "seed": seed if seed is not None else random.randrange(2**50),
                "steps": 20,
                "cfg": 8,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1,
                "model": ["4", 0],
                "positive": ["6", 0],
                "negative": ["7", 0],
                "latent_image": ["5", 0],
            },
        ),
        "4": _node(
            "CheckpointLoaderSimple",
            "Load Checkpoint",
            {"ckpt_name": "v1-5-pruned-emaonly-fp16.safetensors"},
        ),
        "5": _node(
            "EmptyLatentImage", "Empty Latent Image", {"width": 512, "height": 512, "batch_size": 1}
        ),
        "6": _node(
            "CLIPTextEncode",
            "CLIP Text Encode (Prompt)",
            {
                "text": "beautiful scenery nature glass bottle landscape, , purple galaxy bottle,",
                "clip": ["4", 1],
            },
        ),
        "7": _node(
            "CLIPTextEncode",
            "CLIP Text Encode (Prompt)",
            {"text": "text, watermark", "clip": ["4", 1]},
        ),
        "8": _node("VAEDecode", "VAE Decode", {"samples": ["3", 0], "vae": ["4", 2]}),
    }
    if type == "temp":
        graph[node_id] = _node("PreviewImage", "Preview Image", {"images": ["8", 0]})
    else:
        graph[node_id] = _node(
            "SaveImage", "Save Image", {"filename_prefix": "ComfyUI", "images": ["8", 0]}
        )
    if extra_outputs:
        graph[_TEXT_NODE] = _node("PreviewAny", "Preview Any", {"source": ["6", 0]})
        graph[_AUDIO_SRC_NODE] = _node("LoadAudio", "Load Audio", {"audio": "sample.flac"})
        graph[_AUDIO_NODE] = _node(
            "SaveAudio",
            "Save Audio (FLAC)",
            {"filename_prefix": "audio/ComfyUI", "audio": [_AUDIO_SRC_NODE, 0]},
        )
        graph[_ANIM_NODE] = _node(
            "SaveAnimatedWEBP",
            "SaveAnimatedWEBP",
            {
                "filename_prefix": "ComfyUI",
                "fps": 6.0,
                "lossless": False,
                "quality": 80,
                "method": "default",
                "images": ["8", 0],
            },
        )
    if failing:
        graph[_FAIL_NODE] = _node(
            "ImageScaleBy",
            "Upscale Image By",
            {"upscale_method": "lanczos", "scale_by": 2.0, "image": ["8", 0]},
        )
        graph[_FAIL_SAVE_NODE] = _node(
            "SaveImage", "Save Image", {"filename_prefix": "ComfyUI_upscaled", "images": ["30", 0]}
        )
    return graph


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)


def workflow_for(graph: dict[str, Any]) -> dict[str, Any]:
    """A litegraph UI workflow (``extra_pnginfo.workflow``) matching an API-format graph."""
    ids = list(graph)
    numeric = {nid: int(nid) if nid.isdigit() else 1000 + i for i, nid in enumerate(ids)}
    nodes: list[dict[str, Any]] = []
    links: list[list[Any]] = []
    for order, nid in enumerate(ids):
        node = graph[nid] if isinstance(graph[nid], dict) else {}
        class_type = str(node.get("class_type", ""))
        inputs: list[dict[str, Any]] = []
        widgets: list[Any] = []
        for name, value in dict(node.get("inputs", {})).items():
            if _is_link(value):
                link_id = len(links) + 1
                links.append(
                    [link_id, numeric.get(value[0], 0), value[1], numeric[nid], len(inputs), "*"]
                )
                inputs.append({"name": name, "type": "*", "link": link_id})
            else:
                widgets.append(value)
        nodes.append(
            {
                "id": numeric[nid],
                "type": class_type,
                "pos": [100 + 320 * (order % 4), 100 + 260 * (order // 4)],
                "size": [315, 106],
                "flags": {},
                "order": order,
                "mode": 0,
                "inputs": inputs,
                "outputs": [],
                "properties": {"Node name for S&R": class_type},
                "widgets_values": widgets,
            }
        )
    return {
        "id": str(uuid.uuid4()),
        "revision": 0,
        "last_node_id": max(numeric.values(), default=0),
        "last_link_id": len(links),
        "nodes": nodes,
        "links": links,
        "groups": [],
        "config": {},
        "extra": {"ds": {"scale": 1, "offset": [0, 0]}, "frontendVersion": "1.28.8"},
        "version": 0.4,
    }


def _execution_order(graph: dict[str, Any], outputs: Sequence[str]) -> list[str]:
    """Dependencies first, the way ExecutionList stages them (inputs before their users)."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(nid: str) -> None:
        if nid in seen or nid not in graph:
            return
        seen.add(nid)
        node = graph[nid] if isinstance(graph[nid], dict) else {}
        for value in dict(node.get("inputs", {})).values():
            if _is_link(value):
                visit(value[0])
        order.append(nid)

    for nid in outputs:
        visit(nid)
    return order


def _save_image_counter(folder: str, prefix: str) -> int:
    """folder_paths.py ``get_save_image_path``: next ``{prefix}_{counter:05}_`` counter."""
    prefix_len = len(prefix)

    def map_filename(filename: str) -> tuple[int, str]:
        head = filename[: prefix_len + 1]
        try:
            digits = int(filename[prefix_len + 1 :].split("_")[0])
        except ValueError:
            digits = 0
        return digits, head

    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return 1
    matches = [
        m
        for m in map(map_filename, names)
        if os.path.normcase(m[1][:-1]) == os.path.normcase(prefix) and m[1][-1:] == "_"
    ]
    return max(matches)[0] + 1 if matches else 1


def sample_png(index: int, *, prompt: dict[str, Any] | None = None, workflow: Any = None) -> bytes:
    """A small PNG like SaveImage writes (``prompt``/``workflow`` tEXt chunks when given)."""
    from PIL import Image, ImageDraw
    from PIL.PngImagePlugin import PngInfo

    rng = random.Random(index)
    color = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
    img = Image.new("RGB", (64, 64), color)
    ImageDraw.Draw(img).text((4, 26), f"#{index}", fill=(255 - color[0], 255 - color[1], 255))
    metadata = PngInfo()
    if prompt is not None:
        metadata.add_text("prompt", json.dumps(prompt))
    if workflow is not None:
        metadata.add_text("workflow", json.dumps(workflow))
    buf = io.BytesIO()
    img.save(buf, format="PNG", pnginfo=metadata, compress_level=4)
    return buf.getvalue()


def _format_retry_after(value: float) -> bytes:
    return (str(int(value)) if float(value).is_integer() else f"{value:g}").encode()


# ---------------------------------------------------------------------------------------------
# The double
# ---------------------------------------------------------------------------------------------


@dataclass
class _Run:
    """What one simulated prompt run produces."""

    entry: dict[str, Any]
    messages: list[tuple[str, dict[str, Any], str | None]] = field(default_factory=list)


class ComfyUIDouble:
    """A ComfyUI server double on 127.0.0.1 (see the module docstring for what is real).

    ``root/output``, ``root/input`` and ``root/temp`` are ComfyUI's three ``/view`` folders.
    History lives in memory; :meth:`restart` (or :meth:`stop` then :meth:`start`) is a process
    restart: history emptied, ``temp/`` wiped, output files kept, same port. Entries added before
    the first :meth:`start` are kept (they model prompts run before anybody looked).
    """

    def __init__(
        self,
        root: Path,
        *,
        history_max: int = MAXIMUM_HISTORY_SIZE,
        port: int | None = None,
        enable_cors_header: str | None = None,
    ) -> None:
        # folder_paths.base_path is a realpath; /view compares commonpath against it
        self._base = os.path.realpath(os.fspath(root))
        self.root = Path(self._base)
        self._dirs = {name: os.path.join(self._base, name) for name in ("output", "input", "temp")}
        for folder in self._dirs.values():
            os.makedirs(folder, exist_ok=True)
        self.history_max = history_max
        self.enable_cors_header = enable_cors_header
        self.faults = Faults()
        self.requests: collections.Counter[str] = collections.Counter()
        self.view_bytes_sent = 0
        self._port = port
        self._lock = threading.RLock()
        self._history: dict[str, bytes] = {}
        self._number = 0  # PromptServer.number
        self._pending = 0  # len(PromptQueue.queue)
        self._running = 0  # len(PromptQueue.currently_running)
        self._counter: int | None = None  # SaveImage counter for bulk/sample files
        self._started_once = False
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._messages: asyncio.Queue[tuple[str, dict[str, Any], str | None]] | None = None
        self._publisher: asyncio.Task[None] | None = None
        self._stopping: asyncio.Event | None = None
        self._sockets: dict[str, WebSocket] = {}
        self._sockets_metadata: dict[str, dict[str, Any]] = {}
        self._mimetypes = mimetypes.MimeTypes()
        for known in mimetypes.knownfiles:  # server.py: mimetypes.init()
            if os.path.isfile(known):
                self._mimetypes.read(known)
        self._mimetypes.add_type("application/javascript; charset=utf-8", ".js")
        self._mimetypes.add_type("image/webp", ".webp")

    # lifecycle --------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the double has no port before start()")
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> ComfyUIDouble:
        """Start serving (a process start: after an earlier stop, history empty, temp wiped)."""
        if self._server is not None:
            raise RuntimeError("already running")
        if self._started_once:
            self._process_restart_state()
        # proto IPPROTO_TCP: asyncio then sets TCP_NODELAY on accepted connections, as
        # ComfyUI's aiohttp server does (with proto 0 a small reply on a kept connection
        # waits ~40 ms for a delayed ACK)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", self._port or 0))
        except OSError:
            sock.close()
            raise
        self._port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            self._asgi,
            host="127.0.0.1",
            port=self._port,
            http="h11",
            ws=_WebSocketProtocol,
            loop="asyncio",
            interface="asgi3",
            lifespan="on",
            log_config=None,
            log_level="warning",
            access_log=False,
            proxy_headers=False,
            server_header=False,
            headers=[("server", SERVER_SOFTWARE)],
            timeout_keep_alive=75,  # aiohttp keepalive_timeout
            timeout_graceful_shutdown=5,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run,
            kwargs={"sockets": [sock]},
            name=f"comfyui-double-{self._port}",
            daemon=True,
        )
        self._server, self._thread = server, thread
        thread.start()
        while not server.started:
            if not thread.is_alive():
                self._server = self._thread = None
                sock.close()
                raise RuntimeError("the ComfyUI double failed to start (see the log)")
            time.sleep(0.002)
        self._started_once = True
        return self

    def stop(self) -> None:
        """Stop like a killed process: every connection dropped, no websocket close frames."""
        server, thread, loop = self._server, self._thread, self._loop
        if server is None or thread is None:
            return
        if loop is not None and loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(self._drop_connections(server), loop).result(10)
            except Exception:
                log.exception("dropping connections failed")
        server.should_exit = True
        thread.join(30)
        if thread.is_alive():
            server.force_exit = True
            thread.join(10)
        self._server = self._thread = None
        self._loop = None
        self._messages = None
        self._publisher = None
        self._stopping = None
        self._sockets.clear()
        self._sockets_metadata.clear()

    def restart(self) -> None:
        """Stop, then start on the same port: history emptied, ``temp/`` wiped, outputs kept."""
        self.stop()
        self.start()

    def __enter__(self) -> ComfyUIDouble:
        if self._server is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _process_restart_state(self) -> None:
        """main.py ``start_comfyui``: cleanup_temp(), a fresh PromptQueue and PromptServer."""
        with self._lock:
            self._history = {}
            self._number = 0
            self._pending = self._running = 0
            self._counter = None
        shutil.rmtree(self._dirs["temp"], ignore_errors=True)
        os.makedirs(self._dirs["temp"], exist_ok=True)

    async def _drop_connections(self, server: uvicorn.Server) -> None:
        if self._stopping is not None:
            self._stopping.set()
        for listener in getattr(server, "servers", []):
            listener.close()
        for conn in list(server.server_state.connections):
            transport = getattr(conn, "transport", None)
            if transport is not None:
                transport.abort()
        await asyncio.sleep(0)

    # controller: history ----------------------------------------------------------------------

    def history_ids(self) -> list[str]:
        """Prompt ids in history, oldest → newest."""
        with self._lock:
            return list(self._history)

    def history_entry(self, prompt_id: str) -> dict[str, Any] | None:
        """The entry exactly as ``GET /history/{prompt_id}`` returns it (or None)."""
        with self._lock:
            raw = self._history.get(prompt_id)
        return None if raw is None else orjson.loads(raw)

    def clear_history(self) -> None:
        """execution.py ``PromptQueue.wipe_history``."""
        with self._lock:
            self._history = {}

    def connected_client_ids(self) -> list[str]:
        """The server's ``sockets`` keys (which sids broadcasts currently reach)."""
        loop = self._loop
        if loop is None or not loop.is_running():
            return []

        async def read() -> list[str]:
            return list(self._sockets)

        return asyncio.run_coroutine_threadsafe(read(), loop).result(10)

    # controller: files ------------------------------------------------------------------------

    def folder(self, type: str = "output") -> Path:
        """``root/output``, ``root/input`` or ``root/temp``."""
        return Path(self._dirs[type])

    def _file_target(self, filename: str, subfolder: str, type: str) -> str | None:
        base = self._dirs.get(type)
        if base is None:
            return None
        target = os.path.abspath(os.path.join(base, subfolder, filename))
        if target == base or os.path.commonpath((base, target)) != base:
            return None
        return target

    def write_file(
        self, filename: str, data: bytes, subfolder: str = "", type: str = "output"
    ) -> None:
        """Write (or overwrite, e.g. a reused filename) a file; an overwrite gets a new ETag."""
        target = self._file_target(filename, subfolder, type)
        if target is None:
            raise ValueError(f"{type}/{subfolder}/{filename} is outside the {type} folder")
        self._write(target, data)

    def delete_file(self, filename: str, subfolder: str = "", type: str = "output") -> None:
        target = self._file_target(filename, subfolder, type)
        if target is None:
            raise ValueError(f"{type}/{subfolder}/{filename} is outside the {type} folder")
        os.remove(target)

    @staticmethod
    def _write(target: str, data: bytes) -> None:
        try:
            before: os.stat_result | None = os.stat(target)
        except FileNotFoundError:
            before = None
            os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as f:
            f.write(data)
        if before is not None:
            after = os.stat(target)
            if after.st_mtime_ns <= before.st_mtime_ns:
                os.utime(target, ns=(after.st_atime_ns, before.st_mtime_ns + 1_000))

    def _next_counter(self) -> int:
        if self._counter is None:
            self._counter = _save_image_counter(self._dirs["output"], "ComfyUI")
        value = self._counter
        self._counter += 1
        return value

    # controller: prompts ----------------------------------------------------------------------

    def add_prompt(
        self,
        images: Sequence[tuple[str, bytes]] = (),
        *,
        subfolder: str = "",
        type: str = "output",
        status: str = "success",
        node_id: str = "9",
        graph: dict[str, Any] | None = None,
        workflow: dict[str, Any] | None = None,
        started_ms: int | None = None,
        extra_outputs: bool = False,
        write_files: bool = True,
        cached: bool = False,
        client_id: str | None = None,
        no_client_id: bool = False,
    ) -> str:
        """Record one finished prompt exactly as ComfyUI would; returns its prompt id (uuid4).

        ``images`` are ``(filename, bytes)`` saved by the output node ``node_id`` into
        ``type``/``subfolder`` (skipped when ``write_files`` is False, or for a name that would
        land outside its folder such as ``../evil.png``: history still lists it). ``status`` is
        ``success``, ``error`` (an ``execution_error`` on a later node, images kept as partial
        outputs) or ``interrupted``. ``cached`` marks every node as cached (a re-run of the same
        graph: same outputs, shown only when the prompt has a client id). ``extra_outputs`` adds
        ``text``/``audio``/``animated`` outputs. ``client_id`` is the submitting frontend's sid
        (a fresh one by default; that socket gets the execution messages); ``no_client_id``
        queues it like a script that sends none. Sends the websocket messages the run sends.
        """
        if status not in ("success", "error", "interrupted"):
            raise ValueError("status must be 'success', 'error' or 'interrupted'")
        failing = status != "success"
        if graph is None:
            graph = default_graph(node_id, type=type, failing=failing, extra_outputs=extra_outputs)
        else:
            graph = copy.deepcopy(graph)
        if workflow is None:
            workflow = workflow_for(graph)
        sid = None if no_client_id else (client_id or uuid.uuid4().hex)
        refs = [{"filename": name, "subfolder": subfolder, "type": type} for name, _ in images]
        with self._lock:
            if write_files:
                for name, data in images:
                    target = self._file_target(name, subfolder, type)
                    if target is not None:
                        self._write(target, data)
            ui: dict[str, dict[str, Any]] = {}
            if refs:
                ui[node_id] = {"images": refs}
            if extra_outputs:
                ui.update(self._extra_outputs(write_files))
            run = self._simulate(
                graph=graph,
                workflow=workflow,
                node_id=node_id,
                ui=ui,
                status=status,
                cached=cached,
                sid=sid,
                started_ms=started_ms if started_ms is not None else int(time.time() * 1000),
            )
            prompt_id = str(run.entry["prompt"][1])
            self._emit(run.messages)
        return prompt_id

    def _extra_outputs(self, write_files: bool) -> dict[str, dict[str, Any]]:
        counter = self._next_counter()
        audio = {"filename": f"ComfyUI_{counter:05}_.flac", "subfolder": "audio", "type": "output"}
        anim = {"filename": f"ComfyUI_{counter:05}_.webp", "subfolder": "", "type": "output"}
        if write_files:
            self._write(
                os.path.join(self._dirs["output"], "audio", audio["filename"]),
                b"fLaC\x00\x00\x00\x22" + bytes(34),
            )
            self._write(os.path.join(self._dirs["output"], anim["filename"]), _animated_webp())
        return {
            _TEXT_NODE: {"text": ["beautiful scenery nature glass bottle landscape"]},
            _AUDIO_NODE: {"audio": [audio]},
            _ANIM_NODE: {"images": [anim], "animated": [True]},
        }

    def _simulate(
        self,
        *,
        graph: dict[str, Any],
        workflow: Any,
        node_id: str,
        ui: dict[str, dict[str, Any]],
        status: str,
        cached: bool,
        sid: str | None,
        started_ms: int,
    ) -> _Run:
        """server.py post_prompt → PromptQueue.put/get → PromptExecutor.execute → task_done."""
        prompt_id = str(uuid.uuid4())
        number = self._number
        self._number += 1
        out_nodes = [node_id] + [
            nid
            for nid, node in graph.items()
            if nid != node_id
            and isinstance(node, dict)
            and node.get("class_type") in _OUTPUT_CLASSES
        ]
        extra_data: dict[str, Any] = {"extra_pnginfo": {"workflow": workflow}}
        if sid is not None:
            extra_data["client_id"] = sid
        extra_data["create_time"] = started_ms
        run = _Run(entry={})
        msgs = run.messages
        status_messages: list[list[Any]] = []

        def add_message(event: str, data: dict[str, Any], ts: int, broadcast: bool) -> None:
            data = {**data, "timestamp": ts}
            status_messages.append([event, data])
            if sid is not None or broadcast:
                msgs.append((event, data, sid))

        # PromptQueue.put / get → queue_updated
        self._pending += 1
        msgs.append(("status", {"status": self._queue_info()}, None))
        self._pending -= 1
        self._running += 1
        msgs.append(("status", {"status": self._queue_info()}, None))

        order = _execution_order(graph, out_nodes)
        fail_node: str | None = None
        if status != "success":
            if _FAIL_NODE in graph:
                fail_node = _FAIL_NODE
            else:
                others = [nid for nid in graph if nid != node_id]
                fail_node = others[-1] if others else node_id
            if fail_node in order:  # the failing node and everything staged after it never run
                order = order[: order.index(fail_node)]
        cached_nodes = list(graph) if cached else []
        add_message("execution_start", {"prompt_id": prompt_id}, started_ms, False)
        add_message(
            "execution_cached",
            {"nodes": cached_nodes, "prompt_id": prompt_id},
            started_ms + 2,
            False,
        )
        ui_outputs: dict[str, Any] = {}
        meta_outputs: dict[str, Any] = {}
        executed: list[str] = []

        def record(nid: str) -> None:
            output = ui.get(nid)
            if output is None:
                return
            ui_outputs[nid] = output
            meta_outputs[nid] = {
                "node_id": nid,
                "display_node": nid,
                "parent_node": None,
                "real_node_id": nid,
            }

        if cached:
            # execute(): a cached node only re-sends/re-uses its UI when server.client_id is set
            for nid in out_nodes:
                if sid is not None:
                    msgs.append(
                        (
                            "executed",
                            {
                                "node": nid,
                                "display_node": nid,
                                "output": ui.get(nid),
                                "prompt_id": prompt_id,
                            },
                            sid,
                        )
                    )
                    record(nid)
        else:
            for nid in order:
                node = graph.get(nid) if isinstance(graph.get(nid), dict) else {}
                assert isinstance(node, dict)
                if sid is not None:
                    msgs.append(
                        (
                            "executing",
                            {"node": nid, "display_node": nid, "prompt_id": prompt_id},
                            sid,
                        )
                    )
                if node.get("class_type") in ("KSampler", "KSamplerAdvanced"):
                    steps = node.get("inputs", {}).get("steps", 20)
                    steps = steps if isinstance(steps, int) and 0 < steps <= 1000 else 20
                    for value in range(1, steps + 1):
                        progress = {
                            "value": value,
                            "max": steps,
                            "prompt_id": prompt_id,
                            "node": nid,
                        }
                        msgs.append(("progress", progress, sid))  # main.py hijack_progress
                executed.append(nid)
                if nid in ui:
                    record(nid)
                    if sid is not None:
                        msgs.append(
                            (
                                "executed",
                                {
                                    "node": nid,
                                    "display_node": nid,
                                    "output": ui[nid],
                                    "prompt_id": prompt_id,
                                },
                                sid,
                            )
                        )
        end_ms = started_ms + (5 if cached else 1500)
        if fail_node is not None:
            fail = graph.get(fail_node) if isinstance(graph.get(fail_node), dict) else {}
            assert isinstance(fail, dict)
            node_type = str(fail.get("class_type", ""))
            if sid is not None:
                msgs.append(
                    (
                        "executing",
                        {"node": fail_node, "display_node": fail_node, "prompt_id": prompt_id},
                        sid,
                    )
                )
            base = {
                "prompt_id": prompt_id,
                "node_id": fail_node,
                "node_type": node_type,
                "executed": executed,
            }
            if status == "interrupted":
                add_message("execution_interrupted", base, end_ms, True)
            else:
                inputs = dict(fail.get("inputs", {}))
                add_message(
                    "execution_error",
                    {
                        **base,
                        "exception_message": "Allocation on device \nThis error means you ran out "
                        "of memory on your GPU.\n\nTIPS: If the workflow worked before you might "
                        "have accidentally set the batch_size to a large number.",
                        "exception_type": "torch.OutOfMemoryError",
                        "traceback": [
                            '  File "/ComfyUI/execution.py", line 496, in execute\n'
                            "    output_data, output_ui, has_subgraph, has_pending_tasks = "
                            "await get_output_data(prompt_id, unique_id, obj, input_data_all, "
                            "execution_block_cb=execution_block_cb, "
                            "pre_execute_cb=pre_execute_cb, hidden_inputs=hidden_inputs)\n"
                        ],
                        "current_inputs": {
                            k: [str(v) if _is_link(v) else v] for k, v in inputs.items()
                        },
                        "current_outputs": [],
                    },
                    end_ms,
                    False,
                )
        else:
            add_message("execution_success", {"prompt_id": prompt_id}, end_ms, False)

        # main.py prompt_worker → PromptQueue.task_done(process_item=remove_sensitive)
        entry = {
            "prompt": [number, prompt_id, graph, extra_data, out_nodes],
            "outputs": ui_outputs,
            "status": {
                "status_str": "success" if fail_node is None else "error",
                "completed": fail_node is None,
                "messages": status_messages,
            },
            "meta": meta_outputs,
        }
        run.entry = entry
        self._insert(prompt_id, orjson.dumps(entry))
        self._running -= 1
        msgs.append(("status", {"status": self._queue_info()}, None))
        if sid is not None:
            msgs.append(("executing", {"node": None, "prompt_id": prompt_id}, sid))
        return run

    def _insert(self, prompt_id: str, raw: bytes) -> None:
        """execution.py ``task_done``: pop the oldest first when ``len > MAXIMUM_HISTORY_SIZE``."""
        if len(self._history) > self.history_max:
            self._history.pop(next(iter(self._history)))
        self._history[prompt_id] = raw

    def add_prompts_bulk(
        self, count: int, images_per_prompt: int, make_bytes: Callable[[int], bytes]
    ) -> list[str]:
        """Fast path (benchmarks): ``count`` successful default-workflow prompts, same entry shape.

        Image ``i`` (0-based over the whole call) is ``make_bytes(i)``, written to ``output/`` as
        ``ComfyUI_{counter:05}_.png`` (SaveImage's counter, continuing after existing files).
        Each prompt sends the three ``status`` messages (and nothing else: fresh client ids).
        """
        graph = default_graph("9", seed=156680208700286)
        graph_frag = orjson.Fragment(orjson.dumps(graph))
        workflow_frag = orjson.Fragment(orjson.dumps(workflow_for(graph)))
        out_nodes = ["9"]
        outdir = self._dirs["output"]
        ids: list[str] = []
        messages: list[tuple[str, dict[str, Any], str | None]] = []
        now_ms = int(time.time() * 1000)
        image_index = 0
        with self._lock:
            for p in range(count):
                refs: list[dict[str, str]] = []
                for _ in range(images_per_prompt):
                    name = f"ComfyUI_{self._next_counter():05}_.png"
                    fd = os.open(
                        os.path.join(outdir, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644
                    )
                    try:
                        os.write(fd, make_bytes(image_index))
                    finally:
                        os.close(fd)
                    image_index += 1
                    refs.append({"filename": name, "subfolder": "", "type": "output"})
                prompt_id = str(uuid.uuid4())
                t0 = now_ms - (count - p) * 2000
                number = self._number
                self._number += 1
                entry = {
                    "prompt": [
                        number,
                        prompt_id,
                        graph_frag,
                        {
                            "extra_pnginfo": {"workflow": workflow_frag},
                            "client_id": uuid.uuid4().hex,
                            "create_time": t0,
                        },
                        out_nodes,
                    ],
                    "outputs": {"9": {"images": refs}} if refs else {},
                    "status": {
                        "status_str": "success",
                        "completed": True,
                        "messages": [
                            ["execution_start", {"prompt_id": prompt_id, "timestamp": t0}],
                            [
                                "execution_cached",
                                {"nodes": [], "prompt_id": prompt_id, "timestamp": t0 + 2},
                            ],
                            ["execution_success", {"prompt_id": prompt_id, "timestamp": t0 + 1500}],
                        ],
                    },
                    "meta": {
                        "9": {
                            "node_id": "9",
                            "display_node": "9",
                            "parent_node": None,
                            "real_node_id": "9",
                        }
                    }
                    if refs
                    else {},
                }
                self._insert(prompt_id, orjson.dumps(entry))
                ids.append(prompt_id)
                if self._loop is not None:
                    messages += [
                        ("status", {"status": {"exec_info": {"queue_remaining": 1}}}, None),
                        ("status", {"status": {"exec_info": {"queue_remaining": 1}}}, None),
                        ("status", {"status": {"exec_info": {"queue_remaining": 0}}}, None),
                    ]
            self._emit(messages)
        return ids

    # websocket messages (server.py send_sync → publish_loop → send_json) ----------------------

    def _queue_info(self) -> dict[str, Any]:
        """server.py ``get_queue_info``."""
        return {"exec_info": {"queue_remaining": self._pending + self._running}}

    def _emit(self, messages: list[tuple[str, dict[str, Any], str | None]]) -> None:
        loop, queue = self._loop, self._messages
        if loop is None or queue is None or not messages:
            return

        def put_all() -> None:
            for message in messages:
                queue.put_nowait(message)

        with contextlib.suppress(RuntimeError):  # loop already closed (stopping)
            loop.call_soon_threadsafe(put_all)

    async def _publish_loop(self) -> None:
        assert self._messages is not None
        while True:
            event, data, sid = await self._messages.get()
            await self._send_json(event, data, sid)

    async def _send_json(self, event: str, data: dict[str, Any], sid: str | None) -> None:
        message = json.dumps({"type": event, "data": data})
        if sid is None:
            targets = list(self._sockets.values())
        elif sid in self._sockets:
            targets = [self._sockets[sid]]
        else:
            targets = []
        for ws in targets:
            try:
                await ws.send_text(message)
            except Exception as err:  # send_socket_catch_exception
                log.warning("send error: %s", err)

    # ASGI -----------------------------------------------------------------------------------

    async def _asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        path: str = scope["path"]
        route_path = path[4:] if path.startswith("/api/") else path
        self.requests[route_path] += 1
        if scope["type"] == "http" and route_path == "/view":
            send = self._count_view_bytes(send)
        fault = self.faults._take(path, websocket=scope["type"] == "websocket")
        if fault is not None and await self._apply_fault(fault, scope, receive, send):
            return
        await self._middlewares(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._loop = asyncio.get_running_loop()
                self._messages = asyncio.Queue()
                self._stopping = asyncio.Event()
                self._publisher = self._loop.create_task(self._publish_loop())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._publisher is not None:
                    self._publisher.cancel()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _count_view_bytes(self, send: Send) -> Send:
        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.body":  # before the client can see it
                self.view_bytes_sent += len(message.get("body", b""))
            await send(message)

        return counting_send

    async def _sleep(self, seconds: float) -> None:
        stopping = self._stopping
        if stopping is None:
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=seconds)

    def _connection_for(self, scope: Scope) -> Any:
        server = self._server
        if server is None:
            return None
        client = scope.get("client")
        for conn in list(server.server_state.connections):
            if getattr(conn, "client", None) == (tuple(client) if client else None):
                return conn
        return None

    async def _apply_fault(self, fault: _Fault, scope: Scope, receive: Receive, send: Send) -> bool:
        """Returns True when the fault answered the request itself."""
        if fault.kind == "delay":
            await self._sleep(fault.seconds)
            return False
        headers: list[tuple[bytes, bytes]] = []
        if fault.kind == "fail":
            if fault.retry_after is not None:
                headers.append((b"retry-after", _format_retry_after(fault.retry_after)))
            if fault.body:
                headers.append((b"content-type", b"text/plain; charset=utf-8"))
            headers.append((b"content-length", str(len(fault.body)).encode()))
            prefix = "websocket." if scope["type"] == "websocket" else ""
            await send(
                {"type": f"{prefix}http.response.start", "status": fault.status, "headers": headers}
            )
            await send({"type": f"{prefix}http.response.body", "body": fault.body})
            return True
        if scope["type"] == "websocket":  # reset / truncate: drop the upgrade request
            conn = self._connection_for(scope)
            if conn is not None and conn.transport is not None:
                conn.transport.abort()
            return True
        if fault.kind == "malformed_json":
            body = b'{"error": "truncated", "items": [{"id": 1,'
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", _JSON_TYPE.encode()),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return True
        # reset / truncate: run the real handler, then send the headers and half the body
        start: Message = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(bytes(message.get("body", b"")))

        await self._middlewares(scope, receive, capture)
        body = b"".join(chunks)
        kept = [
            (k, v)
            for k, v in start.get("headers", [])
            if k.lower() not in (b"content-length", b"transfer-encoding")
        ]
        await send(
            {
                "type": "http.response.start",
                "status": start.get("status", 200),
                "headers": [*kept, (b"content-length", str(len(body)).encode())],
            }
        )
        part = body[: len(body) // 2]
        if part:
            await send({"type": "http.response.body", "body": part, "more_body": True})
        conn = self._connection_for(scope)
        transport = getattr(conn, "transport", None)
        if transport is None:
            raise ConnectionAbortedError("fault: connection dropped")
        if fault.kind == "reset":
            for _ in range(1000):  # let the partial bytes reach the kernel before the RST
                if transport.get_write_buffer_size() == 0:
                    break
                await asyncio.sleep(0)
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        else:
            transport.close()
        server = self._server
        for _ in range(1000):  # until uvicorn has seen connection_lost (so it logs nothing)
            if server is None or conn not in server.server_state.connections:
                break
            await asyncio.sleep(0)
        return True

    async def _middlewares(self, scope: Scope, receive: Receive, send: Send) -> None:
        """server.py middlewares: origin-only (default) or CORS (--enable-cors-header)."""
        headers = _header_map(scope)
        is_ws = scope["type"] == "websocket"
        if self.enable_cors_header is None:
            try:
                forbidden = _origin_forbidden(headers)
            except Exception:
                log.exception("Error handling request")
                forbidden = None
            if forbidden is None or forbidden:
                response = _server_error(scope) if forbidden is None else _empty(403)
                await self._respond(response, scope, receive, send)
                return
            if not is_ws and scope["method"] == "OPTIONS":
                await _empty(200)(scope, receive, send)
                return
            await self._dispatch(scope, receive, send)
            return
        cors = [
            (b"access-control-allow-origin", self.enable_cors_header.encode()),
            (b"access-control-allow-methods", b"POST, GET, DELETE, PUT, OPTIONS"),
            (b"access-control-allow-headers", b"Content-Type, Authorization"),
            (b"access-control-allow-credentials", b"true"),
        ]

        async def with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *cors]}
            await send(message)

        if is_ws:
            await self._dispatch(scope, receive, send)
        elif scope["method"] == "OPTIONS":
            await _empty(200)(scope, receive, with_cors)
        else:
            await self._dispatch(scope, receive, with_cors)

    async def _respond(
        self, response: Response, scope: Scope, receive: Receive, send: Send
    ) -> None:
        if scope["type"] == "websocket":
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": response.status_code,
                    "headers": response.raw_headers,
                }
            )
            await send({"type": "websocket.http.response.body", "body": bytes(response.body)})
        else:
            await response(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        """server.py ``add_routes``: each route at ``/x`` and ``/api/x``; the static ``/`` route
        answers everything else (404 for a missing file, 405 for non-GET methods)."""
        path: str = scope["path"]
        if path.startswith("/api/"):
            path = path[4:]
        if scope["type"] == "websocket":
            if path == "/ws":
                await self._ws(scope, receive, send)
            else:
                await self._respond(_aiohttp_error(404), scope, receive, send)
            return
        routes: dict[str, Callable[[Scope, Receive, Send], Any]] = {}
        if path == "/history":
            routes = {"GET": self._get_history, "POST": self._post_history}
        elif path.startswith("/history/") and re.fullmatch(r"/history/[^{}/]+", path):
            routes = {"GET": self._get_history_prompt_id}
        elif path == "/view":
            routes = {"GET": self._view}
        elif path == "/queue":
            routes = {"GET": self._get_queue, "POST": self._post_queue}
        elif path == "/prompt":
            routes = {"GET": self._get_prompt}
        elif path == "/system_stats":
            routes = {"GET": self._system_stats}
        elif path == "/features":
            routes = {"GET": self._features}
        elif path == "/ws":
            routes = {"GET": self._ws_without_upgrade}
        elif path == "/" and scope["path"] == "/":
            routes = {"GET": self._index}
        method: str = scope["method"]
        handler = routes.get(method) or (routes.get("GET") if method == "HEAD" else None)
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            if handler is not None:
                await handler(scope, receive, tracking_send)
            elif method in ("GET", "HEAD"):
                await _aiohttp_error(404)(scope, receive, tracking_send)
            else:
                allowed = sorted({*routes, "GET", "HEAD"})
                await _aiohttp_error(405, allow=",".join(allowed))(scope, receive, tracking_send)
        except Exception:
            log.exception("Error handling request")
            if started:
                raise
            await _server_error(scope)(scope, receive, send)

    # routes -----------------------------------------------------------------------------------

    async def _get_history(self, scope: Scope, receive: Receive, send: Send) -> None:
        """server.py ``get_history`` (GET /history) → execution.py ``PromptQueue.get_history``.

        ``max_items`` and ``offset`` go through ``int()`` (a bad value → 500). Without offset
        (``-1``) and with ``max_items`` the newest ``max_items`` entries; ``offset`` counts from
        the oldest; oldest → newest; no total, no cursor.
        """
        query = _query(scope)
        max_items = int(query["max_items"]) if "max_items" in query else None
        offset = int(query["offset"]) if "offset" in query else -1
        with self._lock:
            out: dict[str, orjson.Fragment] = {}
            i = 0
            if offset < 0 and max_items is not None:
                offset = len(self._history) - max_items
            for k, raw in self._history.items():
                if i >= offset:
                    out[k] = orjson.Fragment(raw)
                    if max_items is not None and len(out) >= max_items:
                        break
                i += 1  # noqa: SIM113 - the loop of PromptQueue.get_history, kept as is
            body = orjson.dumps(out)
        await Response(body, headers={"content-type": _JSON_TYPE})(scope, receive, send)

    async def _get_history_prompt_id(self, scope: Scope, receive: Receive, send: Send) -> None:
        """server.py ``get_history_prompt_id`` (GET /history/{prompt_id}): ``{id: entry}`` or
        ``{}``."""
        prompt_id = scope["path"].rsplit("/", 1)[1]
        with self._lock:
            raw = self._history.get(prompt_id)
        body = orjson.dumps({prompt_id: orjson.Fragment(raw)} if raw is not None else {})
        await Response(body, headers={"content-type": _JSON_TYPE})(scope, receive, send)

    async def _post_history(self, scope: Scope, receive: Receive, send: Send) -> None:
        """server.py ``post_history`` (POST /history): ``{"clear": true}`` →
        ``wipe_history``; ``{"delete": [ids]}`` → ``delete_history_item``. 200, empty body."""
        json_data = json.loads(await Request(scope, receive).body())
        if "clear" in json_data and json_data["clear"]:  # noqa: RUF019 - as server.py
            self.clear_history()
        if "delete" in json_data:
            for id_to_delete in json_data["delete"]:
                with self._lock:
                    self._history.pop(id_to_delete, None)
        await _empty(200)(scope, receive, send)

    async def _get_queue(self, scope: Scope, receive: Receive, send: Send) -> None:
        """server.py ``get_queue``: the double's prompts finish instantly, so both are empty."""
        await _json({"queue_running": [], "queue_pending": []})(scope, receive, send)

    async def _post_queue(self, scope: Scope, receive: Receive, send: Send) -> None:
        """server.py ``post_queue``: ``clear`` → ``wipe_queue`` (→ ``queue_updated``, a status
        broadcast); ``delete`` of ids that are not pending does nothing."""
        json_data = json.loads(await Request(scope, receive).body())
        if "clear" in json_data and json_data["clear"]:  # noqa: RUF019 - as server.py
            with self._lock:
                self._pending = 0
                info = self._queue_info()
            await self._send_json("status", {"status": info}, None)
        if "delete" in json_data:
            for _ in json_data["delete"]:
                pass
        await _empty(200)(scope, receive, send)

    async def _get_prompt(self, scope: Scope, receive: Receive, send: Send) -> None:
        """server.py ``get_prompt`` (GET /prompt): ``get_queue_info()``."""
        with self._lock:
            info = self._queue_info()
        await _json(info)(scope, receive, send)

    async def _system_stats(self, scope: Scope, receive: Receive, send: Send) -> None:
        """server.py ``system_stats`` on a CPU-only machine (versions are illustrative)."""
        try:
            page = os.sysconf("SC_PAGE_SIZE")
            ram_total = os.sysconf("SC_PHYS_PAGES") * page
            ram_free = os.sysconf("SC_AVPHYS_PAGES") * page
        except (ValueError, OSError, AttributeError):
            ram_total = ram_free = 16 * 1024**3
        stats = {
            "system": {
                "os": os.name,
                "ram_total": ram_total,
                "ram_free": ram_free,
                "comfyui_version": COMFYUI_VERSION,
                "required_frontend_version": "1.28.9",
                "installed_templates_version": "0.3.10",
                "required_templates_version": "0.3.10",
                "python_version": sys.version,
                "pytorch_version": "2.9.1+cpu",
                "embedded_python": False,
                "argv": ["main.py", "--cpu"],
            },
            "devices": [
                {
                    "name": "cpu",
                    "type": "cpu",
                    "index": None,
                    "vram_total": ram_total,
                    "vram_free": ram_free,
                    "torch_vram_total": ram_total,
                    "torch_vram_free": ram_free,
                }
            ],
        }
        await _json(stats)(scope, receive, send)

    async def _features(self, scope: Scope, receive: Receive, send: Send) -> None:
        """server.py ``get_features``: ``feature_flags.get_server_features()``."""
        await _json(dict(SERVER_FEATURE_FLAGS))(scope, receive, send)

    async def _index(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``/`` serves the frontend's index.html in ComfyUI; the double serves a short note."""
        body = (
            "<!doctype html><title>ComfyUI test double</title>"
            f"<p>ComfyUI {COMFYUI_VERSION} API double. See <a href='/history'>/history</a>, "
            "<a href='/queue'>/queue</a>, <a href='/system_stats'>/system_stats</a>.</p>"
        ).encode()
        await Response(body, headers={"content-type": "text/html; charset=utf-8"})(
            scope, receive, send
        )

    async def _ws_without_upgrade(self, scope: Scope, receive: Receive, send: Send) -> None:
        """GET /ws without ``Upgrade: websocket``: aiohttp's ``ws.prepare`` → 400."""
        text = 'No WebSocket UPGRADE hdr: None\n Can "Upgrade" only to "WebSocket".'
        await Response(
            text.encode(), status_code=400, headers={"content-type": "text/plain; charset=utf-8"}
        )(scope, receive, send)

    async def _view(self, scope: Scope, receive: Receive, send: Send) -> None:
        """server.py ``view_image`` (GET /view) + folder_paths.py, then aiohttp ``FileResponse``.

        No ``filename`` → 404; empty → 400; ``filename[0] == '/'`` or ``'..' in filename`` →
        400; ``"name [output|input|temp]"`` picks the folder, else ``type`` (default
        ``output``; unknown → 400); a ``subfolder`` whose ``abspath`` leaves the folder
        (``commonpath``) → 403; only ``basename(filename)`` is used; not a file → 404.
        ``preview=webp|jpeg[;quality]`` and ``channel=rgb|a`` re-encode with Pillow (a file
        Pillow cannot open → 500, as in ComfyUI); anything else is a FileResponse with
        ``Content-Disposition: filename="{name}"`` and the guessed ``Content-Type`` (html, js,
        css forced to ``application/octet-stream``).
        """
        query = _query(scope)
        if "filename" in query:
            filename, output_dir = self._annotated_filepath(query["filename"])
            if not filename:
                await _empty(400)(scope, receive, send)
                return
            # validation for security: prevent accessing arbitrary path
            if filename[0] == "/" or ".." in filename:
                await _empty(400)(scope, receive, send)
                return
            if output_dir is None:
                output_dir = self._dirs.get(query.get("type", "output"))
            if output_dir is None:
                await _empty(400)(scope, receive, send)
                return
            if "subfolder" in query:
                full_output_dir = os.path.join(output_dir, query["subfolder"])
                if os.path.commonpath((os.path.abspath(full_output_dir), output_dir)) != output_dir:
                    await _empty(403)(scope, receive, send)
                    return
                output_dir = full_output_dir
            filename = os.path.basename(filename)
            file = os.path.join(output_dir, filename)
            if os.path.isfile(file):
                disposition = f'filename="{filename}"'.encode()  # aiohttp writes UTF-8
                if "preview" in query:
                    await self._preview(scope, receive, send, file, query, disposition)
                    return
                channel = query.get("channel", "rgba")
                if channel in ("rgb", "a"):
                    await self._channel(scope, receive, send, file, channel, disposition)
                    return
                content_type = self._mimetypes.guess_type(filename)[0] or "application/octet-stream"
                if content_type in {
                    "text/html",
                    "text/html-sandboxed",
                    "application/xhtml+xml",
                    "text/javascript",
                    "text/css",
                }:
                    content_type = "application/octet-stream"
                await _send_file(
                    scope,
                    send,
                    file,
                    [
                        (b"content-disposition", disposition),
                        (b"content-type", content_type.encode()),
                    ],
                )
                return
        await _empty(404)(scope, receive, send)

    def _annotated_filepath(self, name: str) -> tuple[str, str | None]:
        """folder_paths.py ``annotated_filepath``."""
        if name.endswith("[output]"):
            return name[:-9], self._dirs["output"]
        if name.endswith("[input]"):
            return name[:-8], self._dirs["input"]
        if name.endswith("[temp]"):
            return name[:-7], self._dirs["temp"]
        return name, None

    async def _preview(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        file: str,
        query: dict[str, str],
        disposition: bytes,
    ) -> None:
        from PIL import Image

        with Image.open(file) as opened:
            img: Any = opened
            preview_info = query["preview"].split(";")
            image_format = preview_info[0]
            if image_format not in ["webp", "jpeg"] or "a" in query.get("channel", ""):
                image_format = "webp"
            quality = 90
            if preview_info[-1].isdigit():
                quality = int(preview_info[-1])
            buffer = io.BytesIO()
            if image_format in ["jpeg"] or query.get("channel", "") == "rgb":
                img = img.convert("RGB")
            img.save(buffer, format=image_format, quality=quality)
        await Response(
            buffer.getvalue(),
            headers={
                "content-type": f"image/{image_format}",
                "content-disposition": disposition.decode("latin-1"),
            },
        )(scope, receive, send)

    async def _channel(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        file: str,
        channel: str,
        disposition: bytes,
    ) -> None:
        from PIL import Image

        buffer = io.BytesIO()
        with Image.open(file) as img:
            if channel == "rgb":
                if img.mode == "RGBA":
                    r, g, b, _a = img.split()
                    new_img = Image.merge("RGB", (r, g, b))
                else:
                    new_img = img.convert("RGB")
                new_img.save(buffer, format="PNG")
            else:
                alpha = img.split()[3] if img.mode == "RGBA" else Image.new("L", img.size, 255)
                alpha_img = Image.new("RGBA", img.size)
                alpha_img.putalpha(alpha)
                alpha_img.save(buffer, format="PNG")
        await Response(
            buffer.getvalue(),
            headers={
                "content-type": "image/png",
                "content-disposition": disposition.decode("latin-1"),
            },
        )(scope, receive, send)

    async def _ws(self, scope: Scope, receive: Receive, send: Send) -> None:
        """server.py ``websocket_handler`` (GET /ws?clientId=...).

        ``sid`` = ``clientId`` or a new ``uuid4().hex``; an existing socket with that sid is
        *replaced* in ``sockets`` (not closed); the first message is ``status`` with
        ``exec_info.queue_remaining`` and ``sid``; a first text message ``{"type":
        "feature_flags"}`` is answered with the server's flags; on close ``sockets.pop(sid)``
        (which removes a newer socket with the same sid).
        """
        ws = WebSocket(scope, receive, send)
        await ws.accept()
        sid = _query(scope).get("clientId", "")
        if sid:
            # Reusing existing session, remove old
            self._sockets.pop(sid, None)
        else:
            sid = uuid.uuid4().hex
        self._sockets[sid] = ws
        self._sockets_metadata[sid] = {"feature_flags": {}}
        try:
            with self._lock:
                info = self._queue_info()
            await self._send_json("status", {"status": info, "sid": sid}, sid)
            first_message = True
            while True:
                try:
                    msg = await ws.receive()
                except (WebSocketDisconnect, RuntimeError):
                    break
                if msg["type"] == "websocket.disconnect":
                    break
                text = msg.get("text")
                if text is None:
                    continue
                try:
                    data = json.loads(text)
                    if first_message and data.get("type") == "feature_flags":
                        self._sockets_metadata[sid]["feature_flags"] = data.get("data", {})
                        await self._send_json("feature_flags", dict(SERVER_FEATURE_FLAGS), sid)
                    first_message = False
                except json.JSONDecodeError:
                    log.warning("Invalid JSON received from client %s: %s", sid, text)
                except Exception as e:
                    log.error("Error processing WebSocket message: %s", e)
        finally:
            self._sockets.pop(sid, None)
            self._sockets_metadata.pop(sid, None)


def _animated_webp() -> bytes:
    from PIL import Image

    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(
        buf, format="WEBP", save_all=True, append_images=frames[1:], duration=166, loop=0
    )
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# Running it by hand
# ---------------------------------------------------------------------------------------------


def _add_sample_prompts(double: ComfyUIDouble, prompts: int, images: int) -> list[str]:
    ids: list[str] = []
    for p in range(prompts):
        graph = default_graph("9")
        workflow = workflow_for(graph)
        files: list[tuple[str, bytes]] = []
        for _ in range(images):
            counter = double._next_counter()
            files.append(
                (
                    f"ComfyUI_{counter:05}_.png",
                    sample_png(counter, prompt=graph, workflow=workflow),
                )
            )
        started = int(time.time() * 1000) - (prompts - p) * 30_000
        ids.append(double.add_prompt(files, graph=graph, workflow=workflow, started_ms=started))
    return ids


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.doubles.comfyui",
        description=f"Serve a ComfyUI {COMFYUI_VERSION} API double with sample prompts.",
    )
    parser.add_argument("--port", type=int, default=8188, help="0 picks a free port")
    parser.add_argument("--root", type=Path, default=None, help="base folder (default: a temp dir)")
    parser.add_argument("--prompts", type=int, default=50, help="sample prompts to add")
    parser.add_argument("--images", type=int, default=2, help="PNG images per prompt")
    parser.add_argument("--history-max", type=int, default=MAXIMUM_HISTORY_SIZE)
    parser.add_argument("--enable-cors-header", default=None, metavar="ORIGIN")
    args = parser.parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.root is None:
        import tempfile

        root = Path(tempfile.mkdtemp(prefix="comfyui-double-"))
    else:
        root = args.root
        root.mkdir(parents=True, exist_ok=True)
    double = ComfyUIDouble(
        root,
        history_max=args.history_max,
        port=args.port or None,
        enable_cors_header=args.enable_cors_header,
    )
    double.start()
    try:
        _add_sample_prompts(double, args.prompts, args.images)
        print(f"ComfyUI {COMFYUI_VERSION} double listening on {double.url}", flush=True)
        print(
            f"root {double.root}: {len(double.history_ids())} prompts in history, Ctrl-C to stop",
            flush=True,
        )
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        double.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
