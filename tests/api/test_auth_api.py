"""Auth and per-user scoping, in-process: tokens, sessions, 401/403/404, bounded bodies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gallerysync.catalog import Catalog
from gallerysync.catalog.users import add_user, create_token, revoke_token
from gallerysync.sync.folder import FolderScan, add_folder
from tests.api.conftest import Call
from tests.helpers import write_image


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _user_with_folder(
    catalog: Catalog, root: Path, name: str, seeds: range
) -> tuple[str, dict[str, str]]:
    """A user owning one scanned folder; returns (user id, auth headers)."""
    user = add_user(catalog, name)
    for seed in seeds:
        write_image(root / f"{name}-{seed}.png", seed)
    FolderScan(catalog, add_folder(catalog, root, name=name, owner_id=user.id)).run()
    secret, _ = create_token(catalog, user.id, "test")
    return user.id, _bearer(secret)


def _assets(api: Call, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    response = api("GET", "/api/assets", headers=headers, params=params)
    assert response.status_code == 200, response.text
    assets: list[dict[str, Any]] = response.json()["assets"]
    return assets


def test_auth_off_acts_as_local_owner_without_credentials(api: Call) -> None:
    body = api("GET", "/api/me").json()
    assert body == {"user": {"id": body["user"]["id"], "name": "admin"}, "auth": "off"}


def test_auth_on_refuses_requests_without_credentials(api_auth: Call) -> None:
    for method, url in [
        ("GET", "/api/me"),
        ("GET", "/api/assets"),
        ("GET", "/api/changes"),
        ("GET", "/api/changes/stream"),
        ("GET", "/api/sources"),
        ("POST", "/api/sources/x/sync"),
        ("GET", "/api/inspect"),
        ("GET", "/api/sync/runs"),
        ("DELETE", "/api/assets/00000000-0000-0000-0000-000000000000"),
    ]:
        response = api_auth(method, url)
        assert response.status_code == 401, (method, url, response.text)
        assert response.json()["error"]["code"] == "unauthenticated"
    health = api_auth("GET", "/healthz").json()
    assert health["status"] == "ok" and "sources" not in health  # no details for strangers
    assert api_auth("GET", "/").status_code == 200  # the page itself, to show the sign-in form


def test_bad_credentials_are_refused_even_with_auth_off(api: Call, sqlite_catalog: Catalog) -> None:
    user = add_user(sqlite_catalog, "carol")
    secret, token = create_token(sqlite_catalog, user.id)
    for headers in [
        _bearer("gst_not-a-real-token"),
        _bearer("x" * 5000),
        {"Authorization": "Basic YWRtaW46YWRtaW4="},
        {"Authorization": "Bearer "},
        {"Cookie": "gallerysync_session=forged"},
    ]:
        response = api("GET", "/api/assets", headers=headers)
        assert response.status_code == 401, headers
    assert api("GET", "/api/me", headers=_bearer(secret)).json()["user"]["name"] == "carol"
    revoke_token(sqlite_catalog, token.id)
    assert api("GET", "/api/me", headers=_bearer(secret)).status_code == 401


def test_users_see_only_their_own_assets_sources_and_feed(
    api_auth: Call, sqlite_catalog: Catalog, tmp_path: Path
) -> None:
    alice_id, alice = _user_with_folder(sqlite_catalog, tmp_path / "a", "alice", range(0, 3))
    bob_id, bob = _user_with_folder(sqlite_catalog, tmp_path / "b", "bob", range(10, 14))
    mine, theirs = _assets(api_auth, alice), _assets(api_auth, bob)
    assert len(mine) == 3 and len(theirs) == 4
    assert {o["path"] for a in mine for o in a["origins"]} == {f"alice-{i}.png" for i in range(3)}
    bob_asset = theirs[0]["id"]

    # Bob's asset does not exist for Alice: every route answers 404, and nothing changes.
    for method, suffix in [
        ("GET", ""),
        ("GET", "/original"),
        ("GET", "/thumbnail"),
        ("DELETE", ""),
        ("POST", "/restore"),
    ]:
        response = api_auth(method, f"/api/assets/{bob_asset}{suffix}", headers=alice)
        assert response.status_code == 404, (method, suffix, response.text)
    assert api_auth("GET", f"/api/assets/{bob_asset}", headers=bob).json()["status"] == "present"
    by_his_source = api_auth("GET", "/api/assets", headers=alice, params={"source": "bob"})
    assert by_his_source.status_code == 404  # his source does not exist for her
    assert len(_assets(api_auth, alice, q="bob")) == 0

    # Sources, runs and the inspector are scoped too.
    names = [s["name"] for s in api_auth("GET", "/api/sources", headers=alice).json()["sources"]]
    assert names == ["alice"]
    for method, url in [("POST", "/api/sources/bob/sync"), ("DELETE", "/api/sources/bob")]:
        assert api_auth(method, url, headers=alice).status_code == 404
    assert api_auth("GET", "/api/sources", headers=bob).json()["sources"][0]["name"] == "bob"
    runs = api_auth("GET", "/api/sync/runs", headers=alice).json()["runs"]
    assert runs and {r["source_id"] for r in runs} == {
        s["id"] for s in api_auth("GET", "/api/sources", headers=alice).json()["sources"]
    }
    report = api_auth("GET", "/api/inspect", headers=alice).json()
    assert [d["source"] for d in report["storage_dirs"]] == ["alice"]
    assert report["assets"] == {"present": 3} and report["blobs"] is None
    assert api_auth("GET", "/api/jobs", headers=alice).status_code == 403

    # The feed: Alice's pages hold only her entities, yet cover every position.
    seen: list[dict[str, Any]] = []
    since, covered_to = None, None
    while True:
        params = {"limit": 3, **({"since": since} if since else {})}
        page = api_auth("GET", "/api/changes", headers=alice, params=params).json()
        if covered_to is not None:
            assert page["covers"][0] == covered_to
        covered_to = page["covers"][1]
        seen += page["changes"]
        since = page["next"]
        if page["up_to_date"]:
            break
    ids = {c["id"] for c in seen}
    assert bob_id not in ids and not ids & {a["id"] for a in theirs}
    assert {a["id"] for a in mine} <= ids and alice_id in ids
    text = str(seen)
    assert "bob" not in text


def test_session_cookie_sign_in_and_out(api_auth: Call, sqlite_catalog: Catalog) -> None:
    user = add_user(sqlite_catalog, "dave")
    secret, token = create_token(sqlite_catalog, user.id)
    bad = api_auth("POST", "/api/session", json={"token": "gst_wrong"})
    assert bad.status_code == 401 and "set-cookie" not in bad.headers
    signed = api_auth("POST", "/api/session", json={"token": secret})
    assert signed.status_code == 200 and signed.json()["user"]["name"] == "dave"
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    session = signed.cookies["gallerysync_session"]
    assert session != secret and secret not in cookie
    jar = {"Cookie": f"gallerysync_session={session}"}
    me = api_auth("GET", "/api/me", headers=jar).json()
    assert me == {"user": {"id": user.id, "name": "dave"}, "auth": "on"}
    assert api_auth("GET", "/api/changes?since=now", headers=jar).status_code == 200

    out = api_auth("DELETE", "/api/session", headers=jar)
    assert out.status_code == 204 and "gallerysync_session=" in out.headers["set-cookie"]
    assert api_auth("GET", "/api/me", headers=jar).status_code == 401

    # Revoking the token ends the sessions it opened.
    again = api_auth("POST", "/api/session", json={"token": secret}).cookies["gallerysync_session"]
    jar = {"Cookie": f"gallerysync_session={again}"}
    assert api_auth("GET", "/api/me", headers=jar).status_code == 200
    revoke_token(sqlite_catalog, token.id)
    assert api_auth("GET", "/api/me", headers=jar).status_code == 401


@pytest.mark.parametrize("chunked", [False, True])
def test_oversized_bodies_are_refused(api: Call, chunked: bool) -> None:
    body = b'{"kind": "folder", "path": "' + b"x" * 200_000 + b'"}'

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for i in range(0, len(body), 8192):
            yield body[i : i + 8192]

    content: Any = chunks() if chunked else body
    response = api(
        "POST", "/api/sources", content=content, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
