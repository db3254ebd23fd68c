"""Who am I, and signing in: a bearer token exchanged for an HttpOnly session cookie.

The cookie is `SameSite=Strict` and the session routes take JSON only, so another site can
neither read the session nor make the browser use it; the page itself never sees the secret.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from gallerysync.api.context import SESSION_COOKIE, ApiContext, app_context, context
from gallerysync.catalog.users import SESSION_TTL_MS, create_session, delete_session, get_user
from gallerysync.errors import UnauthenticatedError

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["auth"])
Ctx = Annotated[ApiContext, Depends(context)]


class SignIn(BaseModel):
    token: str = Field(min_length=1, max_length=200, description="an API token (token create)")


def _user_json(ctx: ApiContext, user_id: str) -> dict[str, Any]:
    with ctx.catalog.read() as conn:
        user = get_user(conn, user_id)
    return {"id": user.id, "name": user.name}


@router.get("/me")
async def me(ctx: Ctx) -> dict[str, Any]:
    """The caller, and whether this server requires sign-in (`auth`: `on` | `off`)."""
    user = await asyncio.to_thread(_user_json, ctx, ctx.owner_id)
    return {"user": user, "auth": "on" if ctx.auth_required else "off"}


@router.post("/session")
async def sign_in(body: SignIn, request: Request, response: Response) -> dict[str, Any]:
    """Exchange an API token for a session cookie (HttpOnly, SameSite=Strict, 30 days)."""
    app_ctx = app_context(request)
    made = await asyncio.to_thread(create_session, app_ctx.catalog, body.token.strip())
    if made is None:
        raise UnauthenticatedError("unknown or revoked token")
    secret, user_id = made
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=SESSION_TTL_MS // 1000,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    user = await asyncio.to_thread(_user_json, app_ctx, user_id)
    return {"user": user}


@router.delete("/session", status_code=204)
async def sign_out(request: Request) -> Response:
    """End the session (the cookie is cleared whatever its state)."""
    app_ctx = app_context(request)
    if secret := request.cookies.get(SESSION_COOKIE):
        await asyncio.to_thread(delete_session, app_ctx.catalog, secret)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response
