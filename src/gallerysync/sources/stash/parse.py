"""Stash GraphQL nodes → gallerysync items and entities, checked field by field.

The selections below name only fields of Stash's schema (graphql/schema/types/*.graphql); the
parsers turn each node into a `RemoteItem` (images, scenes: assets) or a `RemoteEntity`
(studios, tags, performers, groups, galleries) whose `remote_id` is the typed key
`"<type>:<id>"` that every link uses. An item's `version` is a digest of the whole node, so a
change that does not move `updated_at` (a tag merge rewriting links) still reads as a change.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from typing import Any

import orjson

from gallerysync.domain import RemoteEntity, RemoteItem
from gallerysync.errors import MalformedResponseError

__all__ = [
    "ENTITY_TYPES",
    "FIELDS",
    "KINDS",
    "PLURAL",
    "Parsed",
    "parse_node",
    "timestamp_ms",
]

ENTITY_TYPES = ("studio", "tag", "performer", "group", "gallery", "scene", "image")
PLURAL = {
    "studio": "studios",
    "tag": "tags",
    "performer": "performers",
    "group": "groups",
    "gallery": "galleries",
    "scene": "scenes",
    "image": "images",
}
_FILES = "size basename fingerprints { type value }"
FIELDS = {
    "studio": "id name details aliases updated_at parent_studio { id } tags { id }",
    "tag": "id name description aliases updated_at parents { id }",
    "performer": "id name disambiguation details alias_list updated_at tags { id }",
    "group": "id name date director synopsis updated_at studio { id } tags { id }",
    "gallery": (
        "id title code date details photographer rating100 organized updated_at image_count"
        " studio { id } tags { id } performers { id }"
    ),
    "scene": (
        "id title code date details director rating100 organized created_at updated_at"
        f" files {{ {_FILES} }} paths {{ screenshot stream }}"
        " studio { id } tags { id } performers { id } galleries { id }"
        " groups { group { id } scene_index }"
    ),
    "image": (
        "id title code date details photographer rating100 organized created_at updated_at"
        f" visual_files {{ ... on ImageFile {{ {_FILES} }} ... on VideoFile {{ {_FILES} }} }}"
        " paths { image thumbnail }"
        " studio { id } tags { id } performers { id } galleries { id }"
    ),
}
KINDS = {
    "studio": "studio",
    "tag": "tag",
    "performer": "person",
    "group": "group",
    "gallery": "collection",
}

Parsed = RemoteItem | RemoteEntity


def digest(node: dict[str, Any]) -> str:
    return hashlib.blake2b(
        orjson.dumps(node, option=orjson.OPT_SORT_KEYS), digest_size=12
    ).hexdigest()


def timestamp_ms(text: str, where: str) -> int:
    try:
        return int(dt.datetime.fromisoformat(text).timestamp() * 1000)
    except (TypeError, ValueError) as exc:
        raise MalformedResponseError(f"{where} should be an RFC 3339 time, not {text!r}") from exc


class _Node:
    """Typed access to one node; every complaint names the path of the field."""

    def __init__(self, node: Any, where: str) -> None:
        if not isinstance(node, dict):
            raise MalformedResponseError(f"{where} should be an object")
        self.node = node
        self.where = where

    def get(self, name: str, check: Callable[[Any], bool], what: str, *, need: bool) -> Any:
        value = self.node.get(name)
        if value is None:
            if need:
                raise MalformedResponseError(f"{self.where}.{name} is missing")
            return None
        if not check(value):
            raise MalformedResponseError(f"{self.where}.{name} should be {what}")
        return value

    def text(self, name: str, *, need: bool = False) -> str | None:
        value: str | None = self.get(name, lambda v: isinstance(v, str), "a string", need=need)
        return value

    def id(self) -> str:
        value = self.get("id", lambda v: isinstance(v, str | int), "an id", need=True)
        text = str(value)
        if not text.isdigit():
            raise MalformedResponseError(f"{self.where}.id should be a number, not {text!r}")
        return text

    def refs(self, name: str, target: str) -> list[str]:
        value = self.get(name, lambda v: isinstance(v, list), "a list", need=False) or []
        return [
            f"{target}:{_Node(v, f'{self.where}.{name}[{i}]').id()}" for i, v in enumerate(value)
        ]

    def ref(self, name: str, target: str) -> list[str]:
        value = self.node.get(name)
        return [] if value is None else [f"{target}:{_Node(value, f'{self.where}.{name}').id()}"]


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v not in (None, "", [])}


def parse_node(etype: str, raw: Any, where: str) -> Parsed:
    node = _Node(raw, where)
    key = f"{etype}:{node.id()}"
    version = digest(raw)
    updated = node.text("updated_at", need=True)
    assert updated is not None
    if etype in KINDS:
        links: list[str] = []
        fields: dict[str, Any]
        if etype == "studio":
            name = node.text("name", need=True)
            fields = {"details": node.text("details"), "aliases": raw.get("aliases")}
            links = node.ref("parent_studio", "studio") + node.refs("tags", "tag")
        elif etype == "tag":
            name = node.text("name", need=True)
            fields = {"description": node.text("description"), "aliases": raw.get("aliases")}
            links = node.refs("parents", "tag")
        elif etype == "performer":
            name = node.text("name", need=True)
            fields = {
                "disambiguation": node.text("disambiguation"),
                "details": node.text("details"),
                "aliases": raw.get("alias_list"),
            }
            links = node.refs("tags", "tag")
        elif etype == "group":
            name = node.text("name", need=True)
            fields = {
                "date": node.text("date"),
                "director": node.text("director"),
                "synopsis": node.text("synopsis"),
            }
            links = node.ref("studio", "studio") + node.refs("tags", "tag")
        else:  # gallery
            name = node.text("title") or f"Gallery {key.partition(':')[2]}"
            fields = {
                "date": node.text("date"),
                "photographer": node.text("photographer"),
                "details": node.text("details"),
                "code": node.text("code"),
                "rating100": raw.get("rating100"),
            }
            links = (
                node.ref("studio", "studio")
                + node.refs("tags", "tag")
                + node.refs("performers", "performer")
            )
        assert name is not None
        fields = _clean(fields | {"updated_at": updated})
        return RemoteEntity(key, KINDS[etype], name, version, fields, tuple(links))
    return _parse_asset(etype, node, key, version, updated)


def _parse_asset(etype: str, node: _Node, key: str, version: str, updated: str) -> RemoteItem:
    raw = node.node
    files_field = "visual_files" if etype == "image" else "files"
    files = node.get(files_field, lambda v: isinstance(v, list), "a list", need=True)
    if not files:
        raise MalformedResponseError(f"{node.where}.{files_field} is empty: no file to fetch")
    first = _Node(files[0], f"{node.where}.{files_field}[0]")
    basename = first.text("basename", need=True)
    assert basename is not None
    size = first.get("size", lambda v: isinstance(v, int) and v >= 0, "a size", need=False)
    fingerprints: dict[str, str] = {}
    for i, fp in enumerate(first.node.get("fingerprints") or []):
        f = _Node(fp, f"{first.where}.fingerprints[{i}]")
        kind, value = f.text("type", need=True), f.text("value", need=True)
        assert kind is not None and value is not None
        fingerprints[kind] = value
    created = node.text("created_at", need=True)
    assert created is not None
    paths = _Node(raw.get("paths") or {}, f"{node.where}.paths")
    links = (
        node.refs("galleries", "gallery")
        + node.refs("tags", "tag")
        + node.refs("performers", "performer")
        + node.ref("studio", "studio")
    )
    positions: dict[str, int] = {}
    for i, entry in enumerate(raw.get("groups") or []):
        g = _Node(entry, f"{node.where}.groups[{i}]")
        group_key = g.ref("group", "group")
        links.extend(group_key)
        index = entry.get("scene_index")
        if group_key and isinstance(index, int):
            positions[group_key[0]] = index
    meta = _clean(
        {
            "title": node.text("title"),
            "code": node.text("code"),
            "date": node.text("date"),
            "details": node.text("details"),
            "photographer": node.text("photographer"),
            "director": node.text("director"),
            "rating100": raw.get("rating100"),
            "organized": raw.get("organized"),
            "updated_at": updated,
            "fingerprints": fingerprints,
            "stash_url": paths.text("image") or paths.text("stream"),
            "stash_thumbnail": paths.text("thumbnail") or paths.text("screenshot"),
        }
    )
    return RemoteItem(
        remote_id=key,
        version=version,
        name=basename,
        created_at=timestamp_ms(created, f"{node.where}.created_at"),
        size=size,
        content_version=fingerprints.get("md5") or fingerprints.get("oshash"),
        meta=meta,
        links=tuple(links),
        positions=positions,
    )
