"""ComfyUI as a source: every image a ComfyUI server produced while gallerysync could see it.

`gallerysync source add comfyui http://gpu-box:8188 [--include-temp]`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from gallerysync.errors import InvalidInputError
from gallerysync.sources.comfyui.connector import ComfyUISource
from gallerysync.sources.registry import SourceKind, normalise_url

__all__ = ["KIND", "ComfyUISource"]


def _options(url: str, given: dict[str, Any]) -> dict[str, Any]:
    unknown = set(given) - {"include_temp"}
    if unknown:
        raise InvalidInputError(f"comfyui sources take no {', '.join(sorted(unknown))}")
    return {"url": normalise_url(url), "include_temp": bool(given.get("include_temp", False))}


def _connect(options: dict[str, Any], session: Any) -> ComfyUISource:
    return ComfyUISource(options["url"], session, include_temp=bool(options.get("include_temp")))


def _default_name(options: dict[str, Any]) -> str:
    parts = urlsplit(options["url"])
    return f"comfyui-{parts.hostname}" + (f"-{parts.port}" if parts.port else "")


KIND = SourceKind(
    kind="comfyui",
    summary="a ComfyUI server: its /history outputs, bytes from /view",
    make_options=_options,
    connect=_connect,
    default_name=_default_name,
)
