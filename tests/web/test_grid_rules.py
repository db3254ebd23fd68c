"""The grid's placement rules (gallery.js), on data a real catalog cannot easily produce:
an asset older than a loaded one arriving on the feed, stale versions, the page boundary.

The module runs in the browser as the gallery runs it; `GET /api/assets` is answered by a
Playwright route serving a keyset-paginated list that the test edits (the real server is only
the origin the module is loaded from)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlparse

from playwright.sync_api import BrowserContext, Page, Route

from tests.web.support import Library


def asset(n: int, created_at: int, path: str | None = None, **changes: Any) -> dict[str, Any]:
    data = {
        "id": f"00000000-0000-7000-8000-{n:012d}",
        "status": "present",
        "trashed": False,
        "kind": "image",
        "format": "PNG",
        "mime": "image/png",
        "width": 4,
        "height": 3,
        "size": 100,
        "hash": f"{n:064x}",
        "version": 1,
        "thumbnail": None,
        "original": None,
        "created_at": created_at,
        "updated_at": created_at,
        "origins": [{"source_id": "s1", "path": path or f"a{n}.png", "status": "present"}],
    }
    data.update(changes)
    return data


class FakeAssets:
    """GET /api/assets over `self.assets`: newest first, keyset cursor, `q` on paths."""

    def __init__(self) -> None:
        self.assets: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, list[str]]] = []

    def put(self, *items: dict[str, Any]) -> None:
        for item in items:
            self.assets[item["id"]] = item

    def handle(self, route: Route) -> None:
        params = parse_qs(urlparse(route.request.url).query)
        self.requests.append(params)
        limit = int(params["limit"][0])
        q = params.get("q", [""])[0].lower()
        rows = sorted(
            (a for a in self.assets.values() if not a["trashed"]),
            key=lambda a: (a["created_at"], a["id"]),
            reverse=True,
        )
        if q:
            rows = [a for a in rows if any(q in o["path"].lower() for o in a["origins"])]
        if "cursor" in params:
            created, asset_id = params["cursor"][0].split("|")
            rows = [a for a in rows if (a["created_at"], a["id"]) < (int(created), asset_id)]
        page = rows[:limit]
        more = len(rows) > limit
        nxt = f"{page[-1]['created_at']}|{page[-1]['id']}" if more else None
        route.fulfill(json={"assets": page, "next": nxt})


BLANK = "<!doctype html><title>grid rules</title>"
SETUP = """async (pageSize) => {
    const { Gallery } = await import('/gallery.js');
    // Detached from the document: nothing scrolls, so pages load only when asked.
    const grid = document.createElement('div');
    window.errors = [];
    window.g = new Gallery({
        grid, sentinel: document.createElement('div'), statusLine: document.createElement('p'),
        pageSize, onOpen() {}, onError(e) { window.errors.push(String(e)); },
    });
    window.ids = () => [...grid.children].map(n => n.dataset.assetId);
    window.node = id => grid.querySelector(`[data-asset-id="${id}"]`);
    window.upsert = data => g.applyEntry({type: 'asset', id: data.id, op: 'upsert', data});
    window.remove = id => g.applyEntry({type: 'asset', id, op: 'delete', data: null});
}"""


def ids(page: Page) -> list[str]:
    result: list[str] = page.evaluate("ids()")
    return result


def dataset(page: Page, asset_id: str) -> dict[str, str]:
    result: dict[str, str] = page.evaluate("id => ({...node(id).dataset})", asset_id)
    return result


def marker(page: Page, asset_id: str) -> str | None:
    result: str | None = page.evaluate("id => node(id).__marker || null", asset_id)
    return result


def short(items: list[dict[str, Any]]) -> list[str]:
    return [a["id"] for a in items]


def test_placement_rules(library: Library, context: BrowserContext) -> None:
    library.start()
    fake = FakeAssets()
    a = {n: asset(n, n * 100) for n in range(1, 8)}  # a7 is the newest
    fake.put(*a.values())
    context.route("**/api/assets?*", fake.handle)
    context.route("**/blank", lambda route: route.fulfill(body=BLANK, content_type="text/html"))
    page = context.new_page()
    page.goto(library.url + "/blank")
    page.evaluate(SETUP, 3)
    page.evaluate("g.reload()")
    assert ids(page) == short([a[7], a[6], a[5]])
    page.evaluate("ids().forEach(id => { node(id).__marker = id; })")

    # Newer than a loaded tile: inserted at its place (between a7 and a6), nothing else moves.
    x = asset(100, 650)
    page.evaluate("upsert", x)
    assert ids(page) == short([a[7], x, a[6], a[5]])
    # Older than the last loaded page while more pages remain: left for the next page.
    y = asset(101, 150)
    page.evaluate("upsert", y)
    assert y["id"] not in ids(page)
    # A stale version is ignored; a newer one updates the same node in place.
    page.evaluate("upsert", {**a[6], "version": 0, "status": "missing"})
    assert dataset(page, a[6]["id"]) == {"assetId": a[6]["id"], "version": "1", "status": "present"}
    page.evaluate("upsert", {**a[6], "version": 2, "status": "missing"})
    assert dataset(page, a[6]["id"]) == {"assetId": a[6]["id"], "version": "2", "status": "missing"}
    assert marker(page, a[6]["id"]) == a[6]["id"]
    # Applying the same entry twice changes nothing.
    page.evaluate("upsert", x)
    assert ids(page) == short([a[7], x, a[6], a[5]])
    # Deleted and trashed assets leave; a delete outranks any later-arriving old state.
    page.evaluate("remove", a[7]["id"])
    page.evaluate("upsert", {**a[5], "version": 2, "trashed": True})
    assert ids(page) == short([x, a[6]])
    page.evaluate("upsert", a[7])
    assert a[7]["id"] not in ids(page)

    # The server agrees (x and y exist; a7 deleted, a5 trashed); pages continue from the
    # cursor (a5's key): y arrives exactly once, in its place.
    fake.put(x, y, {**a[5], "version": 2, "trashed": True})
    del fake.assets[a[7]["id"]]
    page.evaluate("g.loadMore()")
    assert ids(page) == short([x, a[6], a[4], a[3], a[2]])
    page.evaluate("g.loadMore()")
    assert ids(page) == short([x, a[6], a[4], a[3], a[2], y, a[1]])
    assert page.evaluate("g.exhausted") is True
    assert fake.requests[-1]["cursor"] == [f"200|{a[2]['id']}"]
    # Everything is loaded: even the oldest asset goes in, at the end.
    z = asset(102, 50)
    page.evaluate("upsert", z)
    assert ids(page)[-1] == z["id"]
    assert marker(page, a[6]["id"]) == a[6]["id"]  # loading pages rebuilt nothing

    # With a filter, feed entries pass the same predicate as the server's query.
    page.evaluate("g.setFilter({q: 'ZZZ'})")
    assert ids(page) == []
    match = asset(103, 900, path="dir/zzz.png")
    page.evaluate("upsert", match)
    page.evaluate("upsert", asset(104, 950, path="dir/other.png"))
    assert ids(page) == [match["id"]]
    assert page.evaluate("errors") == []
