"""An image pushed with the push client shows up in an open gallery without a reload.

A real `gallerysync serve` (auth off) runs on a watched folder; a headless Chromium tab shows
its gallery, live. The real push client (`gallerysync push DIR --to URL --once --json`, its own
home, a folder the server does not watch) then uploads two new images. Both must appear as
tiles through the change feed, in the API's order, while the tab's `window.__loadId` and the
tile that was already there (the same DOM node) prove the page was never reloaded or
re-rendered.
"""

from __future__ import annotations

import json
from pathlib import Path

from playwright.sync_api import BrowserContext, expect

from tests.helpers import run_cli, write_image
from tests.web.support import (
    TILES,
    Library,
    gallery_of,
    load_id,
    mark_tiles,
    markers_intact,
    tile,
    tile_ids,
)


def test_pushed_images_appear_without_reload(
    library: Library, context: BrowserContext, tmp_path: Path
) -> None:
    page = gallery_of(library, context, 1)
    before = mark_tiles(page)
    loaded = load_id(page)
    assert loaded is not None

    phone = tmp_path / "phone"  # not a source of the server: only the push brings these in
    for i in range(2):
        write_image(phone / f"DCIM/push{i}.jpg", 20_000 + i)
    result = run_cli(
        tmp_path / "client-home",
        "push",
        str(phone),
        "--to",
        library.url,
        "--once",
        "--json",
        env={"GALLERYSYNC_SETTLE_SECONDS": "0.2"},
    )
    status = json.loads(result.stdout)
    assert status["counts"]["done"] == 2, status
    assert status["counts"]["failed"] == 0, status

    ids = library.asset_ids()
    new = [asset_id for asset_id in ids if asset_id not in before]
    assert len(new) == 2, ids

    for asset_id in new:
        expect(tile(page, asset_id)).to_have_count(1)
    expect(page.locator(TILES)).to_have_count(3)
    assert tile_ids(page) == ids  # the pushed ones in place, as the API orders them
    assert markers_intact(page, before)  # the old tile is the same node: no re-render
    assert load_id(page) == loaded  # no reload
