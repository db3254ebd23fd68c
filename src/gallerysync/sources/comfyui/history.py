"""Turn ComfyUI `/history` entries into `RemoteItem`s: pure parsing, no I/O.

Shape followed (ComfyUI 0.3.x, `execution.py` `PromptQueue.task_done` and `server.py`
`get_history`): `{prompt_id: {"prompt": [number, prompt_id, graph, extra_data,
outputs_to_execute], "outputs": {node_id: {"images": [{filename, subfolder, type}], …}},
"status": {"status_str", "completed", "messages": [[event, {"timestamp": ms, …}], …]},
"meta": {…}}}`. Only `images` lists name files; `animated`, `text`, `audio`… do not.

A file's identity is `(type, subfolder, filename)`: identical prompts served from ComfyUI's
cache point at one file, and a name is reused once the newest file with it is deleted. So the
remote id is the path, the version is the newest prompt that listed it, and a new version means
"the bytes may have changed" — phase 2 revalidates with the ETag instead of trusting the name.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from typing import Any

import msgspec
import orjson

from gallerysync.errors import MalformedResponseError
from gallerysync.sources.base import RemoteItem
from gallerysync.sources.folder.media import media_kind_for_name

__all__ = ["ParsedEntry", "Refused", "parse_entry", "parse_history", "remote_id_of"]

FILE_TYPES = ("output", "temp")


@dataclass
class Refused:
    """An output that is listed but will not be fetched (an unsafe name); recorded, not fatal."""

    prompt_id: str
    reason: str


@dataclass
class ParsedEntry:
    prompt_id: str
    created_at: int | None = None
    items: list[RemoteItem] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)


def remote_id_of(file_type: str, subfolder: str, filename: str) -> str:
    return "/".join(part for part in (file_type, subfolder, filename) if part)


class _Image(msgspec.Struct):
    filename: str
    subfolder: str = ""
    type: str = "output"


class _NodeOutput(msgspec.Struct):
    images: list[_Image] = []  # other keys (`animated`, `text`, `audio`…) name no files


class _Stamp(msgspec.Struct):
    timestamp: Any = None


class _Status(msgspec.Struct):
    status_str: Any = None
    messages: list[tuple[str, _Stamp]] = []


class _Entry(msgspec.Struct):
    prompt: list[msgspec.Raw]  # [number, prompt_id, graph, extra_data, outputs_to_execute]
    outputs: dict[str, _NodeOutput] = {}
    status: _Status | None = None


class _ExtraData(msgspec.Struct):
    extra_pnginfo: msgspec.Raw = msgspec.Raw()  # empty: absent (Raw cannot be in a union)


class _PngInfo(msgspec.Struct):
    workflow: msgspec.Raw = msgspec.Raw()


# Only what gallerysync reads is decoded into Python objects: a prompt's graph and workflow
# stay JSON text (`msgspec.Raw`), stored compact (`_stored`). Decoding them into objects only to
# serialize them again was most of a metadata sync's listing time, and the decode held the
# GIL for milliseconds at a time while the page before was being written.
_HISTORY = msgspec.json.Decoder(dict[str, _Entry])
_ENTRY = msgspec.json.Decoder(_Entry)
_NODE_OUTPUT = msgspec.json.Decoder(_NodeOutput)
_EXTRA = msgspec.json.Decoder(_ExtraData)
_PNGINFO = msgspec.json.Decoder(_PngInfo)


def _malformed(exc: msgspec.ValidationError, where: str) -> MalformedResponseError:
    """msgspec's error about the value at `where` as a message naming the field: `history['p1']
    .outputs['9'].images[0].filename should be str, got int`."""
    text = str(exc)
    at = re.search(r" - at `\$(.*)`$", text)
    if at:
        where, text = where + at[1], text[: at.start()]
    found = re.fullmatch(r"Expected `(.+?)`, got `(.+?)`", text)
    if found:
        return MalformedResponseError(
            f"ComfyUI /history: {where} should be {found[1]}, got {found[2]}"
        )
    return MalformedResponseError(f"ComfyUI /history: {where}: {text}")


def _not_json(exc: Exception) -> MalformedResponseError:
    return MalformedResponseError(f"ComfyUI /history: the reply is not JSON ({exc})")


def _diagnose(body: bytes, exc: msgspec.ValidationError) -> MalformedResponseError:
    """Which entry (and which node of its outputs) a page's validation error is in: msgspec
    names dict keys `[...]`, and a user needs the prompt id. Only on the error path."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as not_json:  # msgspec stopped at a wrong type before the end
        return _not_json(not_json)
    if not isinstance(document, dict):
        return _malformed(exc, "the reply")
    for prompt_id, entry in document.items():
        where = f"history[{prompt_id!r}]"
        try:
            _ENTRY.decode(orjson.dumps(entry))
        except msgspec.ValidationError as entry_exc:
            outputs = entry.get("outputs") if isinstance(entry, dict) else None
            for node_id, node_output in (outputs if isinstance(outputs, dict) else {}).items():
                try:
                    _NODE_OUTPUT.decode(orjson.dumps(node_output))
                except msgspec.ValidationError as node_exc:
                    return _malformed(node_exc, f"{where}.outputs[{node_id!r}]")
            return _malformed(entry_exc, where)
    return _malformed(exc, "history")


def _unsafe(filename: str, subfolder: str) -> str | None:
    """Why ComfyUI's own `/view` would refuse this name (server.py: `..` or a leading `/` in
    the filename → 400; a subfolder escaping its directory → 403), or None."""
    if not filename or filename[0] == "/" or ".." in filename or "\x00" in filename:
        return f"unsafe filename {filename!r}"
    if "\\" in filename or "\\" in subfolder or "\x00" in subfolder:
        return f"unsafe path {subfolder!r}/{filename!r}"
    joined = posixpath.normpath(posixpath.join("/root", subfolder, filename))
    if not joined.startswith("/root/") or subfolder.startswith("/"):
        return f"subfolder {subfolder!r} escapes its directory"
    return None


def _timestamps(status: _Status) -> dict[str, int]:
    found: dict[str, int] = {}
    for event, data in status.messages:
        stamp = data.timestamp
        if isinstance(stamp, int | float) and not isinstance(stamp, bool):
            found.setdefault(event, int(stamp))
    return found


def _pnginfo(extra: msgspec.Raw, where: str) -> msgspec.Raw:
    """`extra_data.extra_pnginfo`, still JSON (extra_data itself must be an object)."""
    try:
        return _EXTRA.decode(extra).extra_pnginfo
    except msgspec.ValidationError as exc:
        raise _malformed(exc, f"{where}.prompt[3] (extra_data)") from exc
    except msgspec.DecodeError as exc:  # not reached for Raw cut from a valid document
        raise MalformedResponseError(f"ComfyUI /history: {where}.prompt[3]: {exc}") from exc


def _workflow(pnginfo: msgspec.Raw) -> msgspec.Raw:
    """`extra_pnginfo.workflow`, still JSON; empty where there is none."""
    if not pnginfo:
        return pnginfo
    try:
        return _PNGINFO.decode(pnginfo).workflow
    except msgspec.ValidationError:
        return msgspec.Raw()  # not an object: no workflow (only an object can hold one)


def parse_entry(prompt_id: str, entry: _Entry, *, include_temp: bool) -> ParsedEntry:
    """One decoded history entry → its image files."""
    where = f"history[{prompt_id!r}]"
    prompt = entry.prompt
    if len(prompt) < 4:
        raise MalformedResponseError(
            f"ComfyUI /history: {where}.prompt should be [number, id, graph, extra_data, …]"
        )
    number = msgspec.json.decode(prompt[0])
    pnginfo = _pnginfo(prompt[3], where)
    status = entry.status or _Status()
    stamps = _timestamps(status)
    created = stamps.get("execution_success") or max(stamps.values(), default=None)
    parsed = ParsedEntry(prompt_id, created)
    shared: dict[str, orjson.Fragment] = {}  # the graph and workflow, as JSON text
    wanted = FILE_TYPES if include_temp else ("output",)
    for node_id, node_output in entry.outputs.items():
        for image in node_output.images:
            filename, subfolder, file_type = image.filename, image.subfolder, image.type
            if file_type not in wanted:
                continue  # temp previews (unless asked for) and input files are not outputs
            reason = _unsafe(filename, subfolder)
            if reason is not None:
                parsed.refused.append(Refused(prompt_id, f"{reason} in prompt {prompt_id}"))
                continue
            if media_kind_for_name(filename) is None:
                continue  # a latent, a text file: not an image or video
            if not shared:
                workflow = _workflow(pnginfo)
                shared = {"prompt": _stored(prompt[2]), "workflow": _stored(workflow)}
            parsed.items.append(
                RemoteItem(
                    remote_id=remote_id_of(file_type, subfolder, filename),
                    version=prompt_id,
                    name=filename,
                    created_at=created,
                    content_may_change=True,
                    meta={
                        "filename": filename,
                        "subfolder": subfolder,
                        "type": file_type,
                        "prompt_id": prompt_id,
                        "prompt_number": number,
                        "node_id": node_id,
                        "status": status.status_str,
                        "timestamps": stamps,
                        **shared,
                    },
                )
            )
    return parsed


def _stored(raw: msgspec.Raw) -> orjson.Fragment:
    """A prompt's graph or workflow as the JSON text to store, whitespace removed. Text with
    `\\u` escapes (Python's `json.dumps`, which ComfyUI's server uses, escapes every non-ASCII
    character) is decoded and re-encoded instead, so that a prompt in any script is stored as
    itself and found by a search for its words."""
    text = bytes(raw)
    if not text:  # absent
        return orjson.Fragment(b"null")
    if b"\\u" in text:
        return orjson.Fragment(orjson.dumps(orjson.loads(text)))
    return orjson.Fragment(msgspec.json.format(text, indent=-1))


def parse_history(body: bytes | Any, *, include_temp: bool) -> list[ParsedEntry]:
    """A whole `/history` reply (its bytes, or the decoded object), oldest → newest (the
    server's order). Raises `MalformedResponseError` naming the field that is wrong."""
    if isinstance(body, bytearray | memoryview):
        body = bytes(body)
    elif not isinstance(body, bytes):
        body = orjson.dumps(body)
    try:
        entries = _HISTORY.decode(body)
    except msgspec.ValidationError as exc:
        raise _diagnose(body, exc) from exc
    except msgspec.DecodeError as exc:
        raise _not_json(exc) from exc
    return [parse_entry(pid, entry, include_temp=include_temp) for pid, entry in entries.items()]
