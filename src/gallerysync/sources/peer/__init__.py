"""Another gallerysync instance as a source: `gallerysync source add peer URL --token T`."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from gallerysync.errors import InvalidInputError
from gallerysync.sources.peer.connector import PeerSource
from gallerysync.sources.registry import SourceKind, normalise_url

__all__ = ["KIND", "PeerSource"]


def _options(url: str, given: dict[str, Any]) -> dict[str, Any]:
    unknown = set(given) - {"token"}
    if unknown:
        raise InvalidInputError(f"peer sources take no {', '.join(sorted(unknown))}")
    token = str(given.get("token") or "")
    if not token:
        raise InvalidInputError("a peer needs --token (create one there: gallerysync token create)")
    return {"url": normalise_url(url), "token": token}


def _connect(options: dict[str, Any], session: Any) -> PeerSource:
    return PeerSource(options["url"], options["token"], session)


def _default_name(options: dict[str, Any]) -> str:
    parts = urlsplit(options["url"])
    return f"peer-{parts.hostname}" + (f"-{parts.port}" if parts.port else "")


KIND = SourceKind(
    kind="peer",
    summary="another gallerysync: its change feed, bytes from /api/assets/{id}/original",
    make_options=_options,
    connect=_connect,
    default_name=_default_name,
)
