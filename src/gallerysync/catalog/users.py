"""Users, their API tokens and sign-in sessions.

Secrets (tokens and session ids) are 256 random bits, shown once and stored only as SHA-256:
a slow password hash buys nothing for secrets that cannot be guessed, and a fast one keeps a
bearer-token check to one indexed lookup per request.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from gallerysync.catalog import schema
from gallerysync.catalog.db import Catalog
from gallerysync.domain import new_id, now_ms
from gallerysync.errors import ConflictError, InvalidInputError, NotFoundError

__all__ = [
    "SESSION_TTL_MS",
    "TOKEN_PREFIX",
    "ApiToken",
    "User",
    "add_user",
    "create_session",
    "create_token",
    "delete_session",
    "get_user",
    "list_tokens",
    "list_users",
    "revoke_token",
    "user_for_session",
    "user_for_token",
]

TOKEN_PREFIX = "gst_"
SESSION_TTL_MS = 30 * 24 * 3600 * 1000
NAME_MAX = 200


@dataclass(frozen=True)
class User:
    id: str
    name: str
    created_at: int


@dataclass(frozen=True)
class ApiToken:
    id: str
    user_id: str
    label: str
    prefix: str
    created_at: int


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > NAME_MAX or any(ord(ch) < 32 for ch in name):
        raise InvalidInputError(f"a user name is 1–{NAME_MAX} printable characters")
    return name


def add_user(catalog: Catalog, name: str) -> User:
    name = _check_name(name)
    user = User(id=new_id(), name=name, created_at=now_ms())
    try:
        with catalog.write() as tx:
            tx.conn.execute(
                insert(schema.users).values(id=user.id, name=name, created_at=user.created_at)
            )
            tx.record(user.id, "user", user.id, "upsert", 1)
    except IntegrityError as exc:
        raise ConflictError(f"a user named {name!r} exists") from exc
    return user


def list_users(conn: Connection) -> list[User]:
    u = schema.users
    return [
        User(id=r.id, name=r.name, created_at=r.created_at)
        for r in conn.execute(select(u.c.id, u.c.name, u.c.created_at).order_by(u.c.created_at))
    ]


def get_user(conn: Connection, name_or_id: str) -> User:
    u = schema.users
    row = conn.execute(
        select(u.c.id, u.c.name, u.c.created_at).where(
            (u.c.name == name_or_id) | (u.c.id == name_or_id)
        )
    ).first()
    if row is None:
        raise NotFoundError(f"no user {name_or_id!r}")
    return User(id=row.id, name=row.name, created_at=row.created_at)


def create_token(catalog: Catalog, user_id: str, label: str = "") -> tuple[str, ApiToken]:
    """A new bearer token for `user_id`; returns the secret (shown once) and its record."""
    if len(label) > NAME_MAX:
        raise InvalidInputError(f"a token label is at most {NAME_MAX} characters")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        id=new_id(), user_id=user_id, label=label, prefix=secret[:10], created_at=now_ms()
    )
    with catalog.write() as tx:
        tx.conn.execute(
            insert(schema.api_tokens).values(
                id=token.id,
                user_id=user_id,
                label=label,
                prefix=token.prefix,
                secret_hash=_digest(secret),
                created_at=token.created_at,
            )
        )
    return secret, token


def list_tokens(conn: Connection, user_id: str | None = None) -> list[ApiToken]:
    t = schema.api_tokens
    query = select(t.c.id, t.c.user_id, t.c.label, t.c.prefix, t.c.created_at).order_by(
        t.c.created_at
    )
    if user_id is not None:
        query = query.where(t.c.user_id == user_id)
    return [ApiToken(**r) for r in conn.execute(query).mappings()]


def revoke_token(catalog: Catalog, token_id: str) -> None:
    """Delete a token; the sessions signed in with it end too (ON DELETE CASCADE)."""
    with catalog.write() as tx:
        tx.conn.execute(delete(schema.sessions).where(schema.sessions.c.token_id == token_id))
        gone = tx.conn.execute(
            delete(schema.api_tokens).where(schema.api_tokens.c.id == token_id)
        ).rowcount
    if not gone:
        raise NotFoundError(f"no token {token_id!r}")


def _token_row(conn: Connection, secret: str) -> tuple[str, str] | None:
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 100:
        return None
    t = schema.api_tokens
    row = conn.execute(
        select(t.c.id, t.c.user_id).where(t.c.secret_hash == _digest(secret))
    ).first()
    return (row.id, row.user_id) if row else None


def user_for_token(conn: Connection, secret: str) -> str | None:
    """The user id a bearer token belongs to, or None."""
    row = _token_row(conn, secret)
    return row[1] if row else None


def create_session(catalog: Catalog, token_secret: str) -> tuple[str, str] | None:
    """Exchange a valid API token for a session; returns (session secret, user id) or None."""
    with catalog.read() as conn:
        row = _token_row(conn, token_secret)
    if row is None:
        return None
    token_id, user_id = row
    secret = secrets.token_urlsafe(32)
    now = now_ms()
    with catalog.write() as tx:
        tx.conn.execute(delete(schema.sessions).where(schema.sessions.c.expires_at < now))
        tx.conn.execute(
            insert(schema.sessions).values(
                secret_hash=_digest(secret),
                user_id=user_id,
                token_id=token_id,
                created_at=now,
                expires_at=now + SESSION_TTL_MS,
            )
        )
    return secret, user_id


def user_for_session(conn: Connection, secret: str) -> str | None:
    if len(secret) > 100:
        return None
    s = schema.sessions
    row = conn.execute(
        select(s.c.user_id).where(s.c.secret_hash == _digest(secret), s.c.expires_at > now_ms())
    ).first()
    return row.user_id if row else None


def delete_session(catalog: Catalog, secret: str) -> None:
    with catalog.write() as tx:
        tx.conn.execute(
            delete(schema.sessions).where(schema.sessions.c.secret_hash == _digest(secret))
        )
