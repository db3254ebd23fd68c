"""Organising entities: tags, people, studios, collections and groups, what links to them, and
the values an asset inherits from its collections.

Three layers, each with one writer:

- `entities`: one row per entity a source listed (`apply_entities`), keyed by the source's
  typed key (`"gallery:12"`);
- `links`: what the source says links to what, by keys (`write_links`). Keys, not our ids, so a
  link to an entity we have not listed yet is kept and resolves once we have it — the order in
  which pages arrive can then never change the result;
- `origin_entities` and `origins.inherited`: derived by `settle_origins` from the two above and
  the origin's own values. It is the only code that writes them, and every path that changes
  an input (a page of items, a page of entities, a sweep, a download moving an origin) calls
  it for the origins that input reaches. That is why full, incremental and smart sync end in
  the same derived state: it is a function of the inputs, not of the path.

Inheritance (an origin from its collections, i.e. the entities of kind `collection` it links
to): `studio`, `date`, `photographer` and `details` only where its own value is empty, people
and tags added to its own. An origin in several collections takes each scalar value from the
first collection, in the source's key order (`gallery:2` before `gallery:10`), that has one;
people and tags are the union, each attributed (`via`) to the first collection that has it.
An own link always wins over an inherited one, so the two can always be told apart.

Counts (`entities.asset_count`): distinct assets with a present origin linked to the entity,
own or inherited. Maintained by delta (`CountTracker`): the (asset, entity) pairs of the
assets a write touches, before and after — cost in proportion to the write, not the library.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.engine import Connection

from gallerysync.catalog import schema
from gallerysync.catalog.db import WriteTx
from gallerysync.domain import OriginStatus, RemoteEntity, Source, new_id, now_ms

__all__ = [
    "INHERITED_FIELDS",
    "AppliedEntities",
    "CountTracker",
    "apply_entities",
    "asset_labels",
    "collection_key",
    "entity_states",
    "list_entities",
    "origins_linking",
    "settle_origins",
    "subjects_linking",
    "sweep_entities",
    "write_links",
]

INHERITED_FIELDS = ("date", "photographer", "details")
INHERITED_KINDS = ("studio", "person", "tag")
_CHUNK = 500


def _chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def collection_key(key: str) -> tuple[str, int, str]:
    """The documented order of collections: by the source's key, numbers numerically."""
    prefix, _, rest = key.rpartition(":")
    return (prefix, int(rest), "") if rest.isdigit() else (prefix, -1, rest)


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS).decode()


# --- links ---------------------------------------------------------------------------------


def write_links(
    tx: WriteTx,
    source_id: str,
    subjects: dict[str, tuple[Sequence[str], dict[str, int]]],
) -> set[str]:
    """Replace the links of these subjects with the given targets (and positions); returns
    the subjects whose links actually changed."""
    lk = schema.links
    if not subjects:
        return set()
    current: dict[str, dict[str, int | None]] = {}
    keys = list(subjects)
    for chunk in _chunks(keys):
        for row in tx.conn.execute(
            select(lk.c.subject, lk.c.target, lk.c.position).where(
                lk.c.source_id == source_id, lk.c.subject.in_(chunk)
            )
        ):
            current.setdefault(row.subject, {})[row.target] = row.position
    changed: set[str] = set()
    rows: list[tuple[str, str, str, int | None]] = []
    for subject, (targets, positions) in subjects.items():
        wanted = {t: positions.get(t) for t in targets}
        if current.get(subject, {}) == wanted:
            continue
        changed.add(subject)
        rows.extend((source_id, subject, t, p) for t, p in wanted.items())
    for chunk in _chunks(sorted(changed)):
        tx.conn.execute(delete(lk).where(lk.c.source_id == source_id, lk.c.subject.in_(chunk)))
    tx.insert_many("links", ("source_id", "subject", "target", "position"), rows)
    return changed


def subjects_linking(conn: Connection, source_id: str, targets: Collection[str]) -> set[str]:
    """Keys of whatever links to any of `targets` (directly)."""
    lk = schema.links
    found: set[str] = set()
    for chunk in _chunks(sorted(targets)):
        found.update(
            r[0]
            for r in conn.execute(
                select(lk.c.subject).where(lk.c.source_id == source_id, lk.c.target.in_(chunk))
            )
        )
    return found


def origins_linking(conn: Connection, source_id: str, targets: Collection[str]) -> list[str]:
    """Origin ids whose derived state depends on any of these keys: origins linking to them,
    and origins linking to a collection that links to them."""
    if not targets:
        return []
    direct = subjects_linking(conn, source_id, targets)
    e = schema.entities
    collections = set(targets)
    for chunk in _chunks(sorted(direct)):
        collections.update(
            r[0]
            for r in conn.execute(
                select(e.c.remote_id).where(
                    e.c.source_id == source_id, e.c.remote_id.in_(chunk), e.c.kind == "collection"
                )
            )
        )
    subjects = direct | subjects_linking(conn, source_id, collections - set(targets))
    o = schema.origins
    found: list[str] = []
    for chunk in _chunks(sorted(subjects)):
        found.extend(
            r[0]
            for r in conn.execute(
                select(o.c.id).where(o.c.source_id == source_id, o.c.remote_id.in_(chunk))
            )
        )
    return found


# --- counts --------------------------------------------------------------------------------


def _counted_pairs(conn: Connection, asset_ids: Collection[str]) -> set[tuple[str, str]]:
    """(asset, entity) pairs that count: a present origin of the asset links the entity."""
    o, oe = schema.origins, schema.origin_entities
    pairs: set[tuple[str, str]] = set()
    for chunk in _chunks(sorted(asset_ids)):
        pairs.update(
            (r[0], r[1])
            for r in conn.execute(
                select(o.c.asset_id, oe.c.entity_id)
                .join(oe, oe.c.origin_id == o.c.id)
                .where(o.c.asset_id.in_(chunk), o.c.status == OriginStatus.PRESENT.value)
            )
        )
    return pairs


class CountTracker:
    """Keeps `entities.asset_count` exact across one write: note the assets the write may
    touch *before* it (`watch`), then `apply` after it — the counted pairs of those assets
    are compared and each entity's count moves by the difference."""

    def __init__(self, tx: WriteTx) -> None:
        self.tx = tx
        self.assets: set[str] = set()
        self.before: set[tuple[str, str]] = set()

    def watch(self, asset_ids: Iterable[str]) -> None:
        new = set(asset_ids) - self.assets
        if new:
            self.before |= _counted_pairs(self.tx.conn, new)
            self.assets |= new

    def apply(self) -> set[str]:
        """Move the counts; returns the entity ids whose count changed."""
        if not self.assets:
            return set()
        after = _counted_pairs(self.tx.conn, self.assets)
        delta: dict[str, int] = {}
        for _asset, entity in after - self.before:
            delta[entity] = delta.get(entity, 0) + 1
        for _asset, entity in self.before - after:
            delta[entity] = delta.get(entity, 0) - 1
        moved = {k: v for k, v in delta.items() if v}
        if moved:
            _bump_entities(self.tx, moved)
        self.assets.clear()
        self.before.clear()
        return set(moved)


def _bump_entities(tx: WriteTx, count_delta: dict[str, int]) -> None:
    e = schema.entities
    ids = sorted(count_delta)
    rows: list[Any] = []
    for chunk in _chunks(ids):
        rows.extend(
            tx.conn.execute(select(e.c.id, e.c.owner_id, e.c.version).where(e.c.id.in_(chunk)))
        )
    now = now_ms()
    if rows:
        tx.conn.execute(
            update(e)
            .where(e.c.id == bindparam("b_id"))
            .values(
                asset_count=e.c.asset_count + bindparam("b_delta"),
                version=bindparam("b_version"),
                updated_at=now,
            ),
            [
                {"b_id": r.id, "b_delta": count_delta[r.id], "b_version": r.version + 1}
                for r in rows
            ],
        )
    for r in rows:
        tx.record(r.owner_id, "entity", r.id, "upsert", r.version + 1)


# --- derived state -------------------------------------------------------------------------


@dataclass
class _Entity:
    id: str
    kind: str
    key: str
    fields: dict[str, Any]


def _entities_by_key(conn: Connection, source_id: str, keys: Collection[str]) -> dict[str, _Entity]:
    e = schema.entities
    found: dict[str, _Entity] = {}
    for chunk in _chunks(sorted(keys)):
        for r in conn.execute(
            select(e.c.id, e.c.kind, e.c.remote_id, e.c.fields).where(
                e.c.source_id == source_id, e.c.remote_id.in_(chunk)
            )
        ):
            found[r.remote_id] = _Entity(r.id, r.kind, r.remote_id, json.loads(r.fields))
    return found


def _links_of(conn: Connection, source_id: str, subjects: Collection[str]) -> dict[str, list[str]]:
    lk = schema.links
    found: dict[str, list[str]] = {}
    for chunk in _chunks(sorted(subjects)):
        for r in conn.execute(
            select(lk.c.subject, lk.c.target).where(
                lk.c.source_id == source_id, lk.c.subject.in_(chunk)
            )
        ):
            found.setdefault(r.subject, []).append(r.target)
    return found


def _derive(
    meta: dict[str, Any],
    own: list[_Entity],
    collections: list[_Entity],
    collection_links: dict[str, list[_Entity]],
) -> tuple[dict[str, tuple[int, str | None]], dict[str, Any] | None]:
    """An origin's resolved links `{entity id: (inherited, via)}` and inherited values."""
    rows: dict[str, tuple[int, str | None]] = {x.id: (0, None) for x in own}
    inherited: dict[str, Any] = {}
    for name in INHERITED_FIELDS:
        if not _empty(meta.get(name)):
            continue
        for c in collections:
            if not _empty(c.fields.get(name)):
                inherited[name] = {"value": c.fields[name], "via": c.key}
                break
    has_studio = any(x.kind == "studio" for x in own)
    for c in collections:
        for linked in collection_links.get(c.key, []):
            if linked.kind not in INHERITED_KINDS or linked.id in rows:
                continue
            if linked.kind == "studio":
                if has_studio:
                    continue
                has_studio = True
            rows[linked.id] = (1, c.id)
    return rows, (inherited or None)


def settle_origins(tx: WriteTx, origin_ids: Collection[str], counts: CountTracker) -> set[str]:
    """Rebuild the derived links and inherited values of these origins from their inputs.

    Writes only what differs; an origin whose derived state changed logs its asset (the
    asset's summary carries it). `counts` must already watch these origins' assets. Returns
    the asset ids that changed.
    """
    if not origin_ids:
        return set()
    o, oe = schema.origins, schema.origin_entities
    origins: list[Any] = []
    for chunk in _chunks(sorted(origin_ids)):
        origins.extend(
            tx.conn.execute(
                select(
                    o.c.id, o.c.source_id, o.c.remote_id, o.c.asset_id, o.c.meta, o.c.inherited
                ).where(o.c.id.in_(chunk))
            )
        )
    counts.watch(r.asset_id for r in origins)
    old_rows: dict[str, dict[str, tuple[int, str | None]]] = {}
    for chunk in _chunks(sorted(origin_ids)):
        for r in tx.conn.execute(
            select(oe.c.origin_id, oe.c.entity_id, oe.c.inherited, oe.c.via).where(
                oe.c.origin_id.in_(chunk)
            )
        ):
            old_rows.setdefault(r.origin_id, {})[r.entity_id] = (r.inherited, r.via)

    deletes: list[dict[str, str]] = []
    inserts: list[tuple[str, str, int, str | None]] = []
    updates: list[dict[str, Any]] = []
    inherited_updates: list[dict[str, Any]] = []
    changed_assets: set[str] = set()
    by_source: dict[str, list[Any]] = {}
    for r in origins:
        by_source.setdefault(r.source_id, []).append(r)
    for source_id, rows in by_source.items():
        links = _links_of(tx.conn, source_id, {r.remote_id for r in rows})
        targets = {t for ts in links.values() for t in ts}
        entities = _entities_by_key(tx.conn, source_id, targets)
        collection_keys = {k for k, x in entities.items() if x.kind == "collection"}
        c_links = _links_of(tx.conn, source_id, collection_keys)
        c_entities = _entities_by_key(
            tx.conn, source_id, {t for ts in c_links.values() for t in ts} - set(entities)
        )
        c_entities.update(entities)
        resolved_c_links = {
            key: [c_entities[t] for t in ts if t in c_entities] for key, ts in c_links.items()
        }
        for r in rows:
            own = [entities[t] for t in links.get(r.remote_id, []) if t in entities]
            collections = sorted(
                (x for x in own if x.kind == "collection"), key=lambda x: collection_key(x.key)
            )
            new, inherited = _derive(orjson.loads(r.meta), own, collections, resolved_c_links)
            old = old_rows.get(r.id, {})
            changed = False
            for entity_id in old.keys() - new.keys():
                deletes.append({"b_origin": r.id, "b_entity": entity_id})
                changed = True
            for entity_id, (flag, via) in new.items():
                if entity_id not in old:
                    inserts.append((r.id, entity_id, flag, via))
                    changed = True
                elif old[entity_id] != (flag, via):
                    updates.append(
                        {"b_origin": r.id, "b_entity": entity_id, "b_flag": flag, "b_via": via}
                    )
                    changed = True
            text = None if inherited is None else _dumps(inherited)
            if text != r.inherited:
                inherited_updates.append({"b_id": r.id, "b_inherited": text})
                changed = True
            if changed:
                changed_assets.add(r.asset_id)
    if deletes:
        tx.conn.execute(
            delete(oe).where(
                oe.c.origin_id == bindparam("b_origin"), oe.c.entity_id == bindparam("b_entity")
            ),
            deletes,
        )
    tx.insert_many("origin_entities", ("origin_id", "entity_id", "inherited", "via"), inserts)
    if updates:
        tx.conn.execute(
            update(oe)
            .where(oe.c.origin_id == bindparam("b_origin"), oe.c.entity_id == bindparam("b_entity"))
            .values(inherited=bindparam("b_flag"), via=bindparam("b_via")),
            updates,
        )
    if inherited_updates:
        tx.conn.execute(
            update(o).where(o.c.id == bindparam("b_id")).values(inherited=bindparam("b_inherited")),
            inherited_updates,
        )
    _bump_assets(tx, changed_assets)
    return changed_assets


def _bump_assets(tx: WriteTx, asset_ids: Collection[str]) -> None:
    """A new version of each asset, logged: its summary (labels, inherited values) changed."""
    a = schema.assets
    rows: list[Any] = []
    for chunk in _chunks(sorted(asset_ids)):
        rows.extend(
            tx.conn.execute(select(a.c.id, a.c.owner_id, a.c.version).where(a.c.id.in_(chunk)))
        )
    if not rows:
        return
    now = now_ms()
    tx.conn.execute(
        update(a)
        .where(a.c.id == bindparam("b_id"))
        .values(version=bindparam("b_version"), updated_at=now),
        [{"b_id": r.id, "b_version": r.version + 1} for r in rows],
    )
    for r in rows:
        tx.record(r.owner_id, "asset", r.id, "upsert", r.version + 1)


# --- entities ------------------------------------------------------------------------------


@dataclass
class AppliedEntities:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    changed_keys: set[str] = field(default_factory=set)  # created, updated or deleted

    def counts(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in ("added", "updated", "unchanged", "deleted")}


def apply_entities(
    tx: WriteTx,
    source: Source,
    items: Sequence[RemoteEntity],
    *,
    seen_at: int | None,
) -> AppliedEntities:
    """Upsert one page of entities; idempotent. Then settle the origins the changes reach:
    a collection's members when it changed, and whatever linked to an entity that appeared
    or went away (its links resolve differently now)."""
    e = schema.entities
    result = AppliedEntities()
    by_key: dict[str, RemoteEntity] = {}
    for item in items:
        by_key.pop(item.remote_id, None)
        by_key[item.remote_id] = item
    existing: dict[str, Any] = {}
    for chunk in _chunks(sorted(by_key)):
        for r in tx.conn.execute(
            select(e.c.id, e.c.remote_id, e.c.remote_version, e.c.version, e.c.kind).where(
                e.c.source_id == source.id, e.c.remote_id.in_(chunk)
            )
        ):
            existing[r.remote_id] = r
    now = now_ms()
    inserts: list[tuple[Any, ...]] = []
    updates: list[dict[str, Any]] = []
    seen: list[str] = []
    gone: list[Any] = []
    link_sets: dict[str, tuple[Sequence[str], dict[str, int]]] = {}
    reach: set[str] = set()  # keys whose dependants must be settled
    for key, item in by_key.items():
        row = existing.get(key)
        if item.deleted:
            if row is not None:
                gone.append(row)
                reach.add(key)
                result.changed_keys.add(key)
                result.deleted += 1
            continue
        fields_text = _dumps(item.fields)
        if row is None:
            entity_id = new_id()
            inserts.append(
                (
                    entity_id,
                    source.owner_id,
                    source.id,
                    item.kind,
                    key,
                    item.name,
                    fields_text,
                    item.version,
                    1,
                    0,
                    now,
                    now,
                    now,
                )
            )
            tx.record(source.owner_id, "entity", entity_id, "upsert", 1)
            reach.add(key)
            result.added += 1
        elif row.remote_version == item.version:
            result.unchanged += 1
            if seen_at is not None:
                seen.append(row.id)
            continue
        else:
            updates.append(
                {
                    "b_id": row.id,
                    "b_kind": item.kind,
                    "b_name": item.name,
                    "b_fields": fields_text,
                    "b_rv": item.version,
                    "b_version": row.version + 1,
                }
            )
            tx.record(source.owner_id, "entity", row.id, "upsert", row.version + 1)
            if item.kind == "collection" or row.kind != item.kind:
                reach.add(key)
            result.updated += 1
        result.changed_keys.add(key)
        link_sets[key] = (item.links, {})
    tx.insert_many(
        "entities",
        (
            "id",
            "owner_id",
            "source_id",
            "kind",
            "remote_id",
            "name",
            "fields",
            "remote_version",
            "version",
            "asset_count",
            "created_at",
            "updated_at",
            "last_seen_at",
        ),
        inserts,
    )
    if updates:
        tx.conn.execute(
            update(e)
            .where(e.c.id == bindparam("b_id"))
            .values(
                kind=bindparam("b_kind"),
                name=bindparam("b_name"),
                fields=bindparam("b_fields"),
                remote_version=bindparam("b_rv"),
                version=bindparam("b_version"),
                updated_at=now,
                last_seen_at=now,
            ),
            updates,
        )
    for chunk in _chunks(seen):
        tx.conn.execute(update(e).where(e.c.id.in_(chunk)).values(last_seen_at=seen_at))
    relinked = write_links(tx, source.id, link_sets)
    # A collection whose own links changed hands down something else.
    reach |= {k for k in relinked if by_key[k].kind == "collection"}
    tracker = CountTracker(tx)
    # Dependants are found before the deleted rows go: their links still name them.
    affected = origins_linking(tx.conn, source.id, reach)
    if gone:
        _delete_entities(tx, source, gone, tracker, affected)
    settle_origins(tx, affected, tracker)
    tracker.apply()
    return result


def _delete_entities(
    tx: WriteTx, source: Source, rows: Sequence[Any], tracker: CountTracker, affected: list[str]
) -> None:
    e, lk, oe, o = schema.entities, schema.links, schema.origin_entities, schema.origins
    ids = [r.id for r in rows]
    for chunk in _chunks(sorted(affected)):
        tracker.watch(r[0] for r in tx.conn.execute(select(o.c.asset_id).where(o.c.id.in_(chunk))))
    for chunk in _chunks(ids):
        tx.conn.execute(delete(oe).where(oe.c.entity_id.in_(chunk)))
        tx.conn.execute(delete(e).where(e.c.id.in_(chunk)))
    keys = [r.remote_id for r in rows]
    for chunk in _chunks(keys):
        tx.conn.execute(delete(lk).where(lk.c.source_id == source.id, lk.c.subject.in_(chunk)))
    for r in rows:
        tx.record(source.owner_id, "entity", r.id, "delete", r.version + 1)


def sweep_entities(tx: WriteTx, source: Source, doomed_keys: Collection[str]) -> set[str]:
    """Delete these entities (the source no longer has them) and settle what linked to them;
    returns the keys deleted. The guards are the caller's (catalog.remote.sweep_unseen)."""
    e = schema.entities
    rows: list[Any] = []
    for chunk in _chunks(sorted(doomed_keys)):
        rows.extend(
            tx.conn.execute(
                select(e.c.id, e.c.remote_id, e.c.version).where(
                    e.c.source_id == source.id, e.c.remote_id.in_(chunk)
                )
            )
        )
    if rows:
        tracker = CountTracker(tx)
        affected = origins_linking(tx.conn, source.id, [r.remote_id for r in rows])
        _delete_entities(tx, source, rows, tracker, affected)
        settle_origins(tx, affected, tracker)
        tracker.apply()
    return {r.remote_id for r in rows}


# --- reads ---------------------------------------------------------------------------------


def entity_states(
    conn: Connection, ids: Sequence[str], *, owner_id: str | None = None
) -> list[dict[str, Any]]:
    """An entity as the API and the change feed show it (`owner_id`: only that owner's)."""
    e = schema.entities
    found: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(list(ids)):
        query = select(e).where(e.c.id.in_(chunk))
        if owner_id is not None:
            query = query.where(e.c.owner_id == owner_id)
        for r in conn.execute(query).mappings():
            found[r["id"]] = {
                "id": r["id"],
                "kind": r["kind"],
                "name": r["name"],
                "source_id": r["source_id"],
                "key": r["remote_id"],
                "fields": json.loads(r["fields"]),
                "asset_count": r["asset_count"],
                "version": r["version"],
                "updated_at": r["updated_at"],
            }
    return [found[i] for i in ids if i in found]


def asset_labels(conn: Connection, asset_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Per asset: the entities its present origins link to (`{id, kind, name, inherited}`,
    an own link winning over an inherited one), by kind then name."""
    o, oe, e = schema.origins, schema.origin_entities, schema.entities
    labels: dict[str, dict[str, dict[str, Any]]] = {}
    for chunk in _chunks(list(asset_ids)):
        for r in conn.execute(
            select(o.c.asset_id, e.c.id, e.c.kind, e.c.name, oe.c.inherited)
            .join(oe, oe.c.origin_id == o.c.id)
            .join(e, e.c.id == oe.c.entity_id)
            .where(o.c.asset_id.in_(chunk), o.c.status == OriginStatus.PRESENT.value)
        ):
            mine = labels.setdefault(r.asset_id, {})
            known = mine.get(r.id)
            if known is None or (known["inherited"] and not r.inherited):
                flag = bool(r.inherited)
                mine[r.id] = {"id": r.id, "kind": r.kind, "name": r.name, "inherited": flag}
    return {
        asset: sorted(mine.values(), key=lambda x: (x["kind"], x["name"], x["id"]))
        for asset, mine in labels.items()
    }


def list_entities(
    conn: Connection,
    *,
    owner_id: str,
    kind: str | None = None,
    text: str | None = None,
    limit: int = 200,
    after: str | None = None,
) -> list[dict[str, Any]]:
    """One owner's entities by name (then id), `after` the last id of the previous page."""
    e = schema.entities
    query = select(e.c.id).where(e.c.owner_id == owner_id).order_by(e.c.name, e.c.id).limit(limit)
    if kind:
        query = query.where(e.c.kind == kind)
    if text:
        query = query.where(func.lower(e.c.name).contains(text.lower(), autoescape=True))
    if after:
        last = conn.execute(select(e.c.name).where(e.c.id == after)).first()
        if last is not None:
            query = query.where(
                (e.c.name > last.name) | ((e.c.name == last.name) & (e.c.id > after))
            )
    return entity_states(conn, [r[0] for r in conn.execute(query)])
