"""Stash test helpers: add a Stash source, a comparable view of what a catalog holds of it, and
the oracle — the same view computed straight from the double's rows by the documented rules
(catalog/organise.py), never through gallerysync's code."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from gallerysync.catalog import schema
from gallerysync.domain import Source
from gallerysync.runtime import Runtime
from gallerysync.sync.remote import add_remote_source
from tests.doubles.stash import StashDouble

__all__ = ["add_stash", "catalog_view", "oracle"]

_KIND = {
    "studio": "studio",
    "tag": "tag",
    "performer": "person",
    "group": "group",
    "gallery": "collection",
}
_FIELDS = ("date", "photographer", "details")


def add_stash(runtime: Runtime, double: StashDouble, *, download: str = "off") -> Source:
    return add_remote_source(
        runtime.catalog,
        "stash",
        double.url,
        name=None,
        download=download,
        extra={"api_key": double.api_key},
    )


def catalog_view(runtime: Runtime, source: Source) -> dict[str, Any]:
    """Entities (kind, name, count) and, per present origin, its resolved links (key →
    inherited?) and inherited values; plus the keys of missing origins."""
    e, o, oe = schema.entities, schema.origins, schema.origin_entities
    with runtime.catalog.read() as conn:
        entities = {
            r.remote_id: (r.kind, r.name, r.asset_count)
            for r in conn.execute(
                select(e.c.remote_id, e.c.kind, e.c.name, e.c.asset_count).where(
                    e.c.source_id == source.id
                )
            )
        }
        origins: dict[str, Any] = {}
        missing: set[str] = set()
        for r in conn.execute(
            select(o.c.id, o.c.remote_id, o.c.status, o.c.inherited, o.c.meta).where(
                o.c.source_id == source.id
            )
        ):
            if r.status != "present":
                missing.add(r.remote_id)
                continue
            meta = json.loads(r.meta)
            origins[r.remote_id] = {
                "title": meta.get("title"),
                "links": {},
                "inherited": json.loads(r.inherited) if r.inherited else {},
            }
        for r in conn.execute(
            select(o.c.remote_id, e.c.remote_id.label("key"), oe.c.inherited)
            .join(oe, oe.c.origin_id == o.c.id)
            .join(e, e.c.id == oe.c.entity_id)
            .where(o.c.source_id == source.id, o.c.status == "present")
        ):
            origins[r.remote_id]["links"][r.key] = bool(r.inherited)
    return {"entities": entities, "origins": origins, "missing": missing}


def oracle(double: StashDouble) -> dict[str, Any]:
    """What every mode must end with, from the double's rows alone."""
    rows = double.rows
    entities: dict[str, list[Any]] = {}
    for etype, kind in _KIND.items():
        for row in rows[etype].values():
            name = row.values.get("title" if etype == "gallery" else "name")
            entities[f"{etype}:{row.id}"] = [kind, name or f"Gallery {row.id}", 0]
    origins: dict[str, Any] = {}
    for etype in ("image", "scene"):
        for row in rows[etype].values():
            key = f"{etype}:{row.id}"
            own: dict[str, bool] = {}
            for name, target in (
                ("galleries", "gallery"),
                ("tags", "tag"),
                ("performers", "performer"),
            ):
                for i in row.links.get(name, []):
                    if i in rows[target]:
                        own[f"{target}:{i}"] = False
            if row.studio in rows["studio"]:
                own[f"studio:{row.studio}"] = False
            for g, _index in row.groups:
                if g in rows["group"]:
                    own[f"group:{g}"] = False
            galleries = sorted(i for i in row.links.get("galleries", []) if i in rows["gallery"])
            links = dict(own)
            inherited: dict[str, Any] = {}
            for field in _FIELDS:
                if row.values.get(field) not in (None, ""):
                    continue
                for g in galleries:
                    value = rows["gallery"][g].values.get(field)
                    if value not in (None, ""):
                        inherited[field] = {"value": value, "via": f"gallery:{g}"}
                        break
            has_studio = row.studio in rows["studio"]
            for g in galleries:
                gallery = rows["gallery"][g]
                if gallery.studio in rows["studio"] and not has_studio:
                    links[f"studio:{gallery.studio}"] = True
                    has_studio = True
                for name, target in (("tags", "tag"), ("performers", "performer")):
                    for i in gallery.links.get(name, []):
                        if i in rows[target]:
                            links.setdefault(f"{target}:{i}", True)
            origins[key] = {
                "title": row.values.get("title"),
                "links": links,
                "inherited": inherited,
            }
            for linked in links:
                entities[linked][2] += 1
    return {
        "entities": {k: tuple(v) for k, v in entities.items()},
        "origins": origins,
    }


def without_missing(view: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in view.items() if k != "missing"}
