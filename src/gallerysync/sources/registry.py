"""Remote source kinds by name: the `kind` a user types in `gallerysync source add KIND URL`.

Kinds are found through the `gallerysync.sources` entry-point group — the built-in ComfyUI and
peer connectors register themselves there in `pyproject.toml`, exactly as a third-party package
would — and can also be registered in-process (tests do). Each entry point names a `SourceKind`.
The `folder` kind is not a remote source: it scans this machine's disk (`sync.folder`).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from gallerysync.errors import InvalidInputError
from gallerysync.sources.base import RemoteSource

__all__ = [
    "DOWNLOAD_POLICIES",
    "SourceKind",
    "get_kind",
    "kinds",
    "normalise_url",
    "register",
]

log = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "gallerysync.sources"
DOWNLOAD_POLICIES = ("auto", "on-demand", "off")
_BUILT_IN = {
    "comfyui": "gallerysync.sources.comfyui:KIND",
    "peer": "gallerysync.sources.peer:KIND",
    "stash": "gallerysync.sources.stash:KIND",
}


@dataclass(frozen=True)
class SourceKind:
    """How to configure and open one kind of remote source.

    `make_options(url, given)` validates what the user typed (the URL and the kind's own
    flags) into the options stored with the source; `connect(options, session)` opens a
    connector on an aiohttp session the engine owns; `default_name(options)` names a source the
    user did not name.
    """

    kind: str
    summary: str
    make_options: Callable[[str, dict[str, Any]], dict[str, Any]]
    connect: Callable[[dict[str, Any], Any], RemoteSource]
    default_name: Callable[[dict[str, Any]], str]


_registry: dict[str, SourceKind] = {}
_loaded = False


def register(kind: SourceKind) -> None:
    _registry[kind.kind] = kind


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    found = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    for name, target in _BUILT_IN.items():  # a checkout without installed metadata still works
        if name not in found and name not in _registry:
            module, _, attr = target.partition(":")
            register(getattr(importlib.import_module(module), attr))
    for name, ep in found.items():
        try:
            loaded = ep.load()
        except Exception:  # a broken plug-in must not take the built-in kinds down with it
            log.exception("could not load source kind %r from %s", name, ep.value)
            continue
        if not isinstance(loaded, SourceKind):
            log.error("entry point %s = %s is not a SourceKind; ignored", name, ep.value)
            continue
        _registry.setdefault(loaded.kind, loaded)


def kinds() -> dict[str, SourceKind]:
    _load()
    return dict(sorted(_registry.items()))


def get_kind(name: str) -> SourceKind:
    _load()
    try:
        return _registry[name]
    except KeyError:
        available = ", ".join(["folder", *kinds()])
        raise InvalidInputError(f"unknown source kind {name!r}; available: {available}") from None


def normalise_url(url: str) -> str:
    """An `http(s)://host[:port][/path]` base URL without a trailing slash, or a clear error."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInputError(f"not an http(s) URL: {url!r} (e.g. http://gpu-box:8188)")
    if parts.username or parts.password:
        raise InvalidInputError("put credentials in --token, not in the URL")
    if parts.query or parts.fragment:
        raise InvalidInputError(f"the URL must not have a query or fragment: {url!r}")
    return urlunsplit((parts.scheme, parts.netloc.lower(), parts.path.rstrip("/"), "", ""))
