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
from dataclasses import dataclass, field
from typing import Any

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


def _field(value: Any, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise MalformedResponseError(
            f"ComfyUI /history: {where} should be {names}, got {type(value).__name__}"
        )
    return value


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


def _timestamps(status: dict[str, Any], where: str) -> dict[str, int]:
    found: dict[str, int] = {}
    messages = _field(status.get("messages", []), list, f"{where}.status.messages")
    for i, message in enumerate(messages):
        message = _field(message, list, f"{where}.status.messages[{i}]")
        if len(message) != 2 or not isinstance(message[0], str) or not isinstance(message[1], dict):
            raise MalformedResponseError(
                f"ComfyUI /history: {where}.status.messages[{i}] should be [event, {{…}}]"
            )
        stamp = message[1].get("timestamp")
        if isinstance(stamp, int | float) and not isinstance(stamp, bool):
            found.setdefault(message[0], int(stamp))
    return found


def parse_entry(prompt_id: str, entry: Any, *, include_temp: bool) -> ParsedEntry:
    """One history entry → its image files. Raises `MalformedResponseError` naming the field."""
    where = f"history[{prompt_id!r}]"
    entry = _field(entry, dict, where)
    prompt = _field(entry.get("prompt"), list, f"{where}.prompt")
    if len(prompt) < 4:
        raise MalformedResponseError(
            f"ComfyUI /history: {where}.prompt should be [number, id, graph, extra_data, …]"
        )
    number, graph, extra = prompt[0], prompt[2], prompt[3]
    extra = _field(extra, dict, f"{where}.prompt[3] (extra_data)")
    outputs = _field(entry.get("outputs", {}), dict, f"{where}.outputs")
    status = _field(entry.get("status") or {}, dict, f"{where}.status")
    stamps = _timestamps(status, where)
    created = stamps.get("execution_success") or max(stamps.values(), default=None)
    pnginfo = extra.get("extra_pnginfo")
    workflow = pnginfo.get("workflow") if isinstance(pnginfo, dict) else None
    parsed = ParsedEntry(prompt_id, created)
    shared: dict[str, orjson.Fragment] = {}  # the graph and workflow, serialized once per entry
    wanted = FILE_TYPES if include_temp else ("output",)
    for node_id, node_output in outputs.items():
        node_where = f"{where}.outputs[{node_id!r}]"
        node_output = _field(node_output, dict, node_where)
        images = _field(node_output.get("images", []), list, f"{node_where}.images")
        for index, image in enumerate(images):
            img_where = f"{node_where}.images[{index}]"
            image = _field(image, dict, img_where)
            filename = _field(image.get("filename"), str, f"{img_where}.filename")
            subfolder = _field(image.get("subfolder", ""), str, f"{img_where}.subfolder")
            file_type = _field(image.get("type", "output"), str, f"{img_where}.type")
            if file_type not in wanted:
                continue  # temp previews (unless asked for) and input files are not outputs
            reason = _unsafe(filename, subfolder)
            if reason is not None:
                parsed.refused.append(Refused(prompt_id, f"{reason} in prompt {prompt_id}"))
                continue
            if media_kind_for_name(filename) is None:
                continue  # a latent, a text file: not an image or video
            if not shared:
                shared = {"prompt": _serialized(graph), "workflow": _serialized(workflow)}
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
                        "node_id": str(node_id),
                        "status": status.get("status_str"),
                        "timestamps": stamps,
                        **shared,
                    },
                )
            )
    return parsed


def _serialized(value: Any) -> orjson.Fragment:
    """A prompt's graph or workflow as JSON already serialized: every image of the prompt
    stores the same few KB, and serializing them once instead of once per image was a tenth of
    a metadata sync's time (the stored text is the same)."""
    return orjson.Fragment(orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS))


def parse_history(body: Any, *, include_temp: bool) -> list[ParsedEntry]:
    """A whole `/history` reply, oldest → newest (the server's order)."""
    body = _field(body, dict, "the reply")
    return [parse_entry(str(pid), entry, include_temp=include_temp) for pid, entry in body.items()]
