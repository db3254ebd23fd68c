"""Reading the change feed: opaque resumable tokens, pages that prove what they cover, state
entries, and compaction.

A token is `(instance, epoch, seq)`, base64url-encoded. A token from another instance or
epoch (a restored backup, a moved database), or one older than the oldest resumable point,
cannot be resumed: the reader is told to reset instead of silently missing changes.

Entries carry the entity's *current* state, so replaying one twice is harmless. Compaction
keeps only the newest entry per entity — a reader still receives every entity's latest state,
so compaction alone never forces a reset. Deletions are tombstones kept for a retention
period; once one expires, readers behind it must reset (they could not learn of the delete).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, delete, exists, func, insert, select, update
from sqlalchemy.engine import Connection

from gallerysync.catalog import schema
from gallerysync.catalog.assets import asset_summaries
from gallerysync.catalog.db import Catalog
from gallerysync.catalog.organise import entity_states
from gallerysync.catalog.runs import run_states
from gallerysync.domain import now_ms
from gallerysync.errors import GallerySyncError, InvalidInputError

__all__ = [
    "FeedPage",
    "FeedResetError",
    "FeedToken",
    "compact",
    "decode_token",
    "encode_token",
    "read_page",
    "resumable_after",
]

MAX_PAGE = 1000


class FeedResetError(GallerySyncError):
    """The token cannot be resumed; start again from the beginning (or from `now`)."""

    status = 410
    code = "reset_required"


@dataclass(frozen=True)
class FeedToken:
    instance: str
    epoch: str
    seq: int


def _catalog_tag(instance: str, epoch: str) -> bytes:
    return hashlib.blake2b(f"{instance}|{epoch}".encode(), digest_size=6).digest()


def encode_token(instance: str, epoch: str, seq: int) -> str:
    """19 url-safe characters: a 6-byte tag of (instance, epoch) and the 8-byte position."""
    raw = _catalog_tag(instance, epoch) + seq.to_bytes(8, "big")
    return base64.urlsafe_b64encode(raw).decode()[:19]


def decode_token(token: str, catalog: Catalog) -> int:
    """The sequence number a token of this catalog stands for.

    Malformed text is bad input (400); a well-formed token of another instance or epoch
    needs a reset (410).
    """
    try:
        if len(token) != 19:
            raise ValueError("wrong length")
        raw = base64.urlsafe_b64decode(token + "=")
    except (ValueError, binascii.Error) as exc:
        raise InvalidInputError(f"not a change-feed token: {token[:40]!r}") from exc
    if raw[:6] != _catalog_tag(catalog.instance_id, catalog.epoch):
        raise FeedResetError("this token comes from another catalog or an earlier epoch")
    return int.from_bytes(raw[6:], "big")


def resumable_after(conn: Connection) -> int:
    """Tokens before this position cannot be resumed (tombstones behind it have expired)."""
    value = conn.execute(
        select(schema.instance.c.value).where(schema.instance.c.key == "resumable_after")
    ).scalar_one_or_none()
    return int(value) if value is not None else 0


@dataclass
class FeedPage:
    changes: list[dict[str, Any]] = field(default_factory=list)
    hidden: list[int] = field(default_factory=list)  # seqs of entries the reader may not see
    scopes: list[str] = field(default_factory=list)  # owner of each change (unscoped reads)
    covers_from: int = 0
    covers_to: int = 0
    up_to_date: bool = False
    oldest_resumable: int = 0
    head: int = 0


def read_page(conn: Connection, *, scope: str | None, since: int, limit: int) -> FeedPage:
    """Entries after `since` (at most `limit`), with the range `(since, to]` they cover.

    Entries of other owners are not returned, but the range still covers them, so `next`
    moves past them and the reader can verify it missed nothing it may see.
    """
    limit = max(1, min(limit, MAX_PAGE))
    oldest = resumable_after(conn)
    if since < oldest:
        raise FeedResetError(
            f"position {since} is older than the oldest resumable position {oldest}"
        )
    head = int(conn.execute(select(schema.feed_head.c.seq)).scalar_one())
    rows = (
        conn.execute(
            select(schema.changes)
            .where(schema.changes.c.seq > since, schema.changes.c.seq <= head)
            .order_by(schema.changes.c.seq)
            .limit(limit)
        )
        .mappings()
        .all()
    )
    page = FeedPage(covers_from=since, oldest_resumable=oldest, head=head)
    page.covers_to = rows[-1]["seq"] if len(rows) == limit else head
    page.up_to_date = page.covers_to >= head
    visible = [dict(r) for r in rows if scope is None or r["scope"] == scope]
    page.scopes = [r["scope"] for r in visible]
    page.hidden = [r["seq"] for r in rows if not (scope is None or r["scope"] == scope)]
    states = _current_states(conn, visible)
    for row in visible:
        state = states.get((row["entity_type"], row["entity_id"]))
        page.changes.append(
            {
                "seq": row["seq"],
                "type": row["entity_type"],
                "id": row["entity_id"],
                "op": "delete" if state is None else row["op"],
                "at": row["at"],
                "data": state,
            }
        )
    return page


def _current_states(
    conn: Connection, rows: Iterable[dict[str, Any]]
) -> dict[tuple[str, str], dict[str, Any] | None]:
    wanted: dict[str, set[str]] = {}
    for row in rows:
        wanted.setdefault(row["entity_type"], set()).add(row["entity_id"])
    states: dict[tuple[str, str], dict[str, Any] | None] = {}
    if ids := sorted(wanted.get("asset", ())):
        for state in asset_summaries(conn, ids):
            states[("asset", state["id"])] = state
    if ids := sorted(wanted.get("source", ())):
        s = schema.sources
        for r in conn.execute(
            select(s.c.id, s.c.name, s.c.kind, s.c.status, s.c.status_detail).where(s.c.id.in_(ids))
        ).mappings():
            states[("source", r["id"])] = dict(r)
    if ids := sorted(wanted.get("sync_run", ())):
        for state in run_states(conn, ids):
            states[("sync_run", state["id"])] = state
    if ids := sorted(wanted.get("entity", ())):
        for state in entity_states(conn, ids):
            states[("entity", state["id"])] = state
    if ids := sorted(wanted.get("user", ())):
        u = schema.users
        for r in conn.execute(select(u.c.id, u.c.name).where(u.c.id.in_(ids))).mappings():
            states[("user", r["id"])] = dict(r)
    return states


def compact(catalog: Catalog, *, tombstone_retention_ms: int) -> dict[str, int]:
    """Keep the newest entry per entity; drop tombstones older than the retention.

    Returns counts of removed entries. Readers behind an expired tombstone must reset; the
    oldest resumable position moves forward accordingly.
    """
    c, newer = schema.changes, schema.changes.alias("newer")
    with catalog.write() as tx:
        superseded = tx.conn.execute(
            delete(c).where(
                exists().where(
                    and_(
                        newer.c.entity_type == c.c.entity_type,
                        newer.c.entity_id == c.c.entity_id,
                        newer.c.seq > c.c.seq,
                    )
                )
            )
        ).rowcount
        cutoff = now_ms() - tombstone_retention_ms
        expired_through = tx.conn.execute(
            select(func.max(c.c.seq)).where(c.c.op == "delete", c.c.at < cutoff)
        ).scalar_one_or_none()
        expired = 0
        if expired_through is not None:
            expired = tx.conn.execute(delete(c).where(c.c.op == "delete", c.c.at < cutoff)).rowcount
            current = resumable_after(tx.conn)
            if expired_through > current:
                _set_instance(tx.conn, "resumable_after", str(expired_through))
    return {"superseded": int(superseded), "expired_tombstones": int(expired)}


def _set_instance(conn: Connection, key: str, value: str) -> None:
    t = schema.instance
    if conn.execute(select(t.c.key).where(t.c.key == key)).first():
        conn.execute(update(t).where(t.c.key == key).values(value=value))
    else:
        conn.execute(insert(t).values(key=key, value=value))
