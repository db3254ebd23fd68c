"""Organising entities: the caller's tags, people, studios, collections and groups, with their
asset counts (inherited links included), for browsing and for the gallery's filters.

Filtering assets by them is on `GET /api/assets?tag=…&person=…&studio=…&collection=…`.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi import Path as PathParam

from gallerysync.api.context import ApiContext, context
from gallerysync.catalog.organise import entity_states, list_entities
from gallerysync.domain import ENTITY_KINDS
from gallerysync.errors import NotFoundError

__all__ = ["router"]

router = APIRouter(prefix="/api/entities", tags=["entities"])
Ctx = Annotated[ApiContext, Depends(context)]
KIND_PATTERN = "^(" + "|".join(ENTITY_KINDS) + ")$"


@router.get("")
async def entities(
    ctx: Ctx,
    kind: Annotated[str | None, Query(pattern=KIND_PATTERN)] = None,
    q: Annotated[str | None, Query(max_length=200, description="text in the name")] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    after: Annotated[str | None, Query(min_length=36, max_length=36)] = None,
) -> dict[str, Any]:
    """`{"entities": [{id, kind, name, key, source_id, fields, asset_count, version}…],
    "next": id|null}` by name; pass `next` as `after` for the following page."""

    def run() -> dict[str, Any]:
        with ctx.catalog.read() as conn:
            found = list_entities(
                conn, owner_id=ctx.owner_id, kind=kind, text=q, limit=limit + 1, after=after
            )
        page = found[:limit]
        return {"entities": page, "next": page[-1]["id"] if len(found) > limit else None}

    return await asyncio.to_thread(run)


@router.get("/{entity_id}")
async def entity(
    ctx: Ctx, entity_id: Annotated[str, PathParam(min_length=36, max_length=36)]
) -> dict[str, Any]:
    def run() -> dict[str, Any]:
        try:
            wanted = str(uuid.UUID(entity_id))
        except ValueError:
            raise NotFoundError(f"no entity with id {entity_id}") from None
        with ctx.catalog.read() as conn:
            found = entity_states(conn, [wanted], owner_id=ctx.owner_id)
        if not found:  # another user's: not even confirmed to exist
            raise NotFoundError(f"no entity with id {entity_id}")
        return found[0]

    return await asyncio.to_thread(run)
