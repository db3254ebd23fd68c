"""The catalog schema: one SQLAlchemy Core metadata for SQLite and PostgreSQL.

Alembic migrations in `migrations/versions` create exactly this; `tests/catalog/test_schema.py`
fails when the two drift apart.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

__all__ = [
    "api_tokens",
    "assets",
    "blobs",
    "changes",
    "entities",
    "feed_head",
    "instance",
    "jobs",
    "links",
    "metadata",
    "origin_entities",
    "origins",
    "scan_cache",
    "sessions",
    "sources",
    "storage_dirs",
    "sync_runs",
    "sync_state",
    "users",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

instance = Table(
    "instance",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(36), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("label", String(200), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    Column("secret_hash", String(64), primary_key=True),
    Column("user_id", String(36), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("token_id", String(36), ForeignKey("api_tokens.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
)

sources = Table(
    "sources",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("name", String(200), nullable=False, unique=True),
    Column("owner_id", String(36), ForeignKey("users.id"), nullable=False),
    Column("options", Text, nullable=False, default="{}"),
    Column("status", String(16), nullable=False, default="ok"),
    Column("status_detail", Text, nullable=False, default=""),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

storage_dirs = Table(
    "storage_dirs",
    metadata,
    Column("source_id", String(36), ForeignKey("sources.id", ondelete="CASCADE"), primary_key=True),
    Column("root", Text, nullable=False),
    Column("id_file_status", String(16), nullable=False),
    Column("alias_id", String(36)),
    Column("detail", Text, nullable=False, default=""),
    Column("last_scan_at", BigInteger),
)

assets = Table(
    "assets",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("owner_id", String(36), ForeignKey("users.id"), nullable=False),
    Column("hash", String(64)),
    Column("status", String(16), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("format", String(16)),
    Column("mime", String(64)),
    Column("width", Integer),
    Column("height", Integer),
    Column("size", BigInteger),
    Column("thumb_hash", String(64)),
    Column("trashed_at", BigInteger),  # set by the user (DELETE /api/assets/{id}); restorable
    Column("version", Integer, nullable=False, default=1),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    UniqueConstraint("owner_id", "hash"),
    Index(None, "owner_id", "created_at", "id"),  # the gallery's keyset order, no sort
)

origins = Table(
    "origins",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("source_id", String(36), ForeignKey("sources.id", ondelete="CASCADE"), nullable=False),
    Column("remote_id", Text, nullable=False),
    Column("asset_id", String(36), ForeignKey("assets.id"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("path", Text),
    Column("size", BigInteger),
    Column("mtime_ns", BigInteger),
    Column("meta", Text, nullable=False, default="{}"),
    Column("version", Integer, nullable=False, default=1),
    Column("first_seen_at", BigInteger, nullable=False),
    Column("last_seen_at", BigInteger, nullable=False),
    # Remote sources only (NULL for folder files, whose bytes are on disk):
    Column("remote_version", Text),  # the source's version of the item (prompt id, updated_at…)
    Column("fetch_status", String(16)),  # pending | done | failed | off: phase 2 state
    Column("fetch_error", Text),  # why the last download failed, for the user
    Column("etag", String(200)),  # validator of the bytes we hold (If-None-Match)
    # Values inherited from the origin's collections (JSON: date, photographer, details and
    # where each came from), kept apart from its own values in `meta`: see catalog/organise.py.
    Column("inherited", Text),
    UniqueConstraint("source_id", "remote_id"),
    Index(None, "asset_id"),
    Index(None, "source_id", "fetch_status"),
    # The few origins not present, by key: "how many of a type do we hold" is then a range
    # count on the unique index minus a range count here (catalog.remote.held_count).
    Index(
        "ix_origins_absent",
        "source_id",
        "remote_id",
        sqlite_where=text("status <> 'present'"),
        postgresql_where=text("status <> 'present'"),
    ),
)

entities = Table(
    "entities",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("owner_id", String(36), ForeignKey("users.id"), nullable=False),
    Column("source_id", String(36), ForeignKey("sources.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(16), nullable=False),  # tag | person | studio | collection | group
    Column("remote_id", Text, nullable=False),  # the source's typed key, e.g. "tag:7"
    Column("name", Text, nullable=False),
    Column("fields", Text, nullable=False, default="{}"),  # JSON: date, details, photographer…
    Column("remote_version", Text),
    Column("version", Integer, nullable=False, default=1),
    Column("asset_count", Integer, nullable=False, default=0),  # incl. inherited links
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("last_seen_at", BigInteger, nullable=False),
    UniqueConstraint("source_id", "remote_id"),
    Index(None, "owner_id", "kind", "name"),
)

# What a source says links to what, by the source's own keys (an image to its galleries, tags,
# performers and studio; a gallery to its studio, tags and performers). Keys, not our ids: a
# link may name an entity we have not listed yet, and it resolves once we have.
links = Table(
    "links",
    metadata,
    Column("source_id", String(36), ForeignKey("sources.id", ondelete="CASCADE"), primary_key=True),
    Column("subject", Text, primary_key=True),
    Column("target", Text, primary_key=True),
    Column("position", Integer),  # order within a collection, where the source has one
    # Covering, so "what links to these keys" is an index range: with (source_id, target)
    # alone SQLite preferred scanning the primary key's source_id prefix.
    Index(None, "source_id", "target", "subject"),
)

# Derived: an origin's resolved links to entities, its own ones and those inherited from its
# collections (`via`: the collection it came from). Rebuilt by catalog/organise.py whenever an
# input changes; filters and counts read it.
origin_entities = Table(
    "origin_entities",
    metadata,
    Column("origin_id", String(36), ForeignKey("origins.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "entity_id", String(36), ForeignKey("entities.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("inherited", Integer, nullable=False),  # 0 own, 1 inherited only
    Column("via", String(36)),
    Index(None, "entity_id"),
)

blobs = Table(
    "blobs",
    metadata,
    Column("hash", String(64), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("role", String(16), nullable=False),  # original | thumbnail
    Column("created_at", BigInteger, nullable=False),
)

sync_state = Table(
    "sync_state",
    metadata,
    Column("source_id", String(36), ForeignKey("sources.id", ondelete="CASCADE"), primary_key=True),
    Column("entity_type", String(32), primary_key=True),
    Column("cursor", Text),
    Column("last_sync_at", BigInteger),
    Column("last_count", BigInteger),
    Column("updated_at", BigInteger, nullable=False),
)

sync_runs = Table(
    "sync_runs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("source_id", String(36), ForeignKey("sources.id", ondelete="CASCADE"), nullable=False),
    Column("mode", String(16), nullable=False),
    Column("status", String(16), nullable=False),  # running | ok | failed | offline
    Column("started_at", BigInteger, nullable=False),
    Column("finished_at", BigInteger),
    Column("counts", Text, nullable=False, default="{}"),
    Column("error", Text),
    Column("pid", Integer),
    Column("progress", Text),  # JSON {"done", "total"} while running
    Index(None, "source_id", "started_at"),
)

feed_head = Table(
    "feed_head",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("seq", BigInteger, nullable=False),
)

changes = Table(
    "changes",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("scope", String(36), nullable=False),
    Column("entity_type", String(32), nullable=False),
    Column("entity_id", String(64), nullable=False),
    Column("op", String(16), nullable=False),
    Column("version", Integer, nullable=False),
    Column("at", BigInteger, nullable=False),
    Index(None, "entity_type", "entity_id"),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("dedupe_key", String(200), unique=True),
    Column("payload", Text, nullable=False, default="{}"),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("max_attempts", Integer, nullable=False),
    Column("next_attempt_at", BigInteger, nullable=False),
    Column("last_error", Text),
    Column("locked_by", String(100)),
    Column("locked_at", BigInteger),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index(None, "status", "next_attempt_at"),
)

scan_cache = Table(
    "scan_cache",
    metadata,
    Column("sd_id", String(36), ForeignKey("sources.id", ondelete="CASCADE"), primary_key=True),
    Column("rel_path", Text, primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("mtime_ns", BigInteger, nullable=False),
    Column("inode", BigInteger, nullable=False),
    # hash((size, mtime_ns, inode)) of a file that hashed cleanly, NULL after an error: a
    # rescan loads (rel_path, stat_sig) pairs straight into a dict and compares one integer.
    Column("stat_sig", BigInteger),
    Column("hash", String(64)),
    Column("error", Text),
    Column("seen_at", BigInteger, nullable=False),
    Index(None, "hash"),
)
