"""Stash as a source: a whole Stash library — studios, tags, performers, groups, galleries,
scenes and images — mirrored with its links, so filters by an inherited performer work here.

`gallerysync source add stash http://host:9999 --api-key KEY`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from gallerysync.errors import InvalidInputError
from gallerysync.sources.registry import SourceKind, normalise_url
from gallerysync.sources.stash.connector import StashSource

__all__ = ["KIND", "StashSource"]


def _options(url: str, given: dict[str, Any]) -> dict[str, Any]:
    unknown = set(given) - {"api_key"}
    if unknown:
        raise InvalidInputError(f"stash sources take no {', '.join(sorted(unknown))}")
    key = str(given.get("api_key") or "")
    if any(ord(c) < 33 or ord(c) > 126 for c in key):
        raise InvalidInputError("the Stash API key has characters an HTTP header cannot carry")
    return {"url": normalise_url(url), "api_key": key or None}


def _connect(options: dict[str, Any], session: Any) -> StashSource:
    return StashSource(options["url"], options.get("api_key"), session)


def _default_name(options: dict[str, Any]) -> str:
    parts = urlsplit(options["url"])
    return f"stash-{parts.hostname}" + (f"-{parts.port}" if parts.port else "")


KIND = SourceKind(
    kind="stash",
    summary="a Stash server: its library over GraphQL, bytes from /image/<id>/image",
    make_options=_options,
    connect=_connect,
    default_name=_default_name,
)
