"""What every route needs, set once on the app (the composition root fills it in)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from gallerysync.blobs.local import LocalBlobStore
from gallerysync.catalog import Catalog
from gallerysync.events.hub import ChangeHub

__all__ = ["ApiContext", "context"]


@dataclass(frozen=True)
class ApiContext:
    catalog: Catalog
    hub: ChangeHub
    blobs: LocalBlobStore
    heartbeat_seconds: float
    owner_id: str
    health_details: Callable[[], dict[str, Any]] | None
    start_sync: Callable[[str, str], None] | None


def context(request: Request) -> ApiContext:
    ctx = request.app.state.ctx
    assert isinstance(ctx, ApiContext)
    return ctx
