"""The gallery follows the change feed: new files appear in place, deletions disappear, missing
files become placeholders, a reconnect catches up exactly once, a reset reloads, and the Live
indicator tells the truth. No test reloads the page: `window.__loadId` proves it."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import BrowserContext, expect

from tests.helpers import wait_for, write_image
from tests.web.support import (
    TILES,
    Library,
    gallery_of,
    grid_mutations,
    load_id,
    mark_tiles,
    markers_intact,
    open_gallery,
    start_serve,
    stop_serve,
    tile,
    tile_ids,
    watch_grid_mutations,
)

# Records every state of #live from the first paint on (window.__liveStates).
RECORD_LIVE_STATES = """
window.__liveStates = [];
new MutationObserver(() => {
    const live = document.getElementById('live');
    const state = live && live.dataset.state;
    const states = window.__liveStates;
    if (state && states[states.length - 1] !== state) states.push(state);
}).observe(document, {subtree: true, childList: true, attributes: true,
                      attributeFilter: ['data-state']});
"""


def test_new_file_appears_first_without_rerender(library: Library, context: BrowserContext) -> None:
    pages: list[str] = []
    context.on("request", lambda r: pages.append(r.url) if "/api/assets?" in r.url else None)
    page = gallery_of(library, context, 5)
    before = mark_tiles(page)
    assert before == library.asset_ids()
    loaded = load_id(page)
    watch_grid_mutations(page)

    library.image("new.png")
    expect(page.locator(TILES)).to_have_count(6)
    new = library.asset_at("new.png")
    assert tile_ids(page) == [new["id"], *before]  # the newest, so first; the rest untouched
    assert markers_intact(page, before)
    assert grid_mutations(page) == {"added": [new["id"]], "removed": []}  # one insertBefore
    assert load_id(page) == loaded
    assert len(pages) == 1  # the feed entry was enough: no page was fetched again

    img = tile(page, new["id"]).locator("img")
    expect(img).to_have_count(1)
    expect(img).to_have_attribute("src", f"/api/assets/{new['id']}/thumbnail")
    expect(img).to_have_attribute("loading", "lazy")
    expect(img).to_have_attribute("decoding", "async")

    # The thumbnail job bumps the asset's version: the same node is updated in place.
    def thumbnailed() -> dict[str, Any] | None:
        current: dict[str, Any] = library.api("GET", f"/api/assets/{new['id']}")
        return current if current["thumbnail"] else None

    version = wait_for(thumbnailed, what="the thumbnail job")["version"]
    expect(tile(page, new["id"])).to_have_attribute("data-version", str(version))
    assert grid_mutations(page)["removed"] == []


def test_trashed_asset_disappears_and_missing_file_stays_as_placeholder(
    library: Library, context: BrowserContext
) -> None:
    page = gallery_of(library, context, 4)
    ids = mark_tiles(page)
    loaded = load_id(page)

    trashed = ids[1]
    library.api("DELETE", f"/api/assets/{trashed}")
    expect(tile(page, trashed)).to_have_count(0)
    assert tile_ids(page) == [ids[0], *ids[2:]]

    # A file deleted from disk: its asset is `missing` (its history is kept). The tile stays,
    # as a placeholder with a "missing" badge.
    gone = ids[2]
    path = library.api("GET", f"/api/assets/{gone}")["origins"][0]["path"]
    (library.root / path).unlink()
    expect(tile(page, gone)).to_have_attribute("data-status", "missing")
    expect(tile(page, gone)).to_have_class(re.compile(r"\bmissing\b"))
    expect(tile(page, gone).locator(".tile-badge")).to_have_text("missing")
    assert tile_ids(page) == [ids[0], *ids[2:]]
    assert markers_intact(page, [ids[0], *ids[2:]])
    assert load_id(page) == loaded


def test_reconnect_catches_up_exactly_once(library: Library, context: BrowserContext) -> None:
    page = gallery_of(library, context, 3)
    serve = library.running
    before = mark_tiles(page)
    loaded = load_id(page)

    stop_serve(serve)
    expect(page.locator("#live")).to_have_attribute("data-state", "offline")
    library.images(20, prefix="offline")
    library.serve = start_serve(library.home, port=serve.port)

    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    expect(page.locator(TILES)).to_have_count(23)
    ids = tile_ids(page)
    assert len(set(ids)) == len(ids) == 23
    assert ids == library.asset_ids()
    assert ids[20:] == before
    assert markers_intact(page, before)
    assert load_id(page) == loaded


def test_second_tab_sees_the_same_changes(library: Library, context: BrowserContext) -> None:
    library.images(2)
    library.start()
    first = open_gallery(context, library.url)
    second = open_gallery(context, library.url)
    for page in (first, second):
        expect(page.locator(TILES)).to_have_count(2)

    library.image("both.png")
    new = library.asset_at("both.png")
    for page in (first, second):
        expect(page.locator(TILES)).to_have_count(3)
        assert tile_ids(page)[0] == new["id"]

    library.api("DELETE", f"/api/assets/{new['id']}")
    for page in (first, second):
        expect(tile(page, new["id"])).to_have_count(0)
        expect(page.locator(TILES)).to_have_count(2)


def test_live_indicator_follows_the_connection(library: Library, context: BrowserContext) -> None:
    library.images(1)
    serve = library.start()
    context.add_init_script(RECORD_LIVE_STATES)
    page = open_gallery(context, library.url)
    live = page.locator("#live")
    loaded = load_id(page)

    stop_serve(serve)
    expect(live).to_have_attribute("data-state", "offline")
    library.serve = start_serve(library.home, port=serve.port)
    expect(live).to_have_attribute("data-state", "live")
    states = page.evaluate("window.__liveStates")
    assert states[:2] == ["connecting", "live"]
    assert states[-1] == "live" and "offline" in states[2:]
    assert states.index("offline", 2) < len(states) - 1
    assert load_id(page) == loaded

    # Still live: a change still arrives.
    library.image("after.png")
    expect(page.locator(TILES)).to_have_count(2)


def test_reset_reloads_the_data(library: Library, context: BrowserContext) -> None:
    """A token of another catalog gets `event: reset`: the page loads the new data in place."""
    page = gallery_of(library, context, 3)
    serve = library.running
    loaded = load_id(page)

    other = Library(home=library.home.parent / "other-home", root=library.home.parent / "other")
    for i in range(2):
        write_image(other.root / f"o{i}.png", 90_000 + i)
    other.add_folder(other.root)
    stop_serve(serve)
    other.serve = start_serve(other.home, port=serve.port)
    try:
        expected = other.asset_ids()
        assert len(expected) == 2
        expect(page.locator(TILES)).to_have_count(2)
        assert tile_ids(page) == expected
        expect(page.locator("#live")).to_have_attribute("data-state", "live")
        assert load_id(page) == loaded
        other.image("later.png")
        expect(page.locator(TILES)).to_have_count(3)
    finally:
        page.close()
        other.stop()
