"""The gallery filters by tag, person, studio and collection — inherited links included — and
keeps the filtered view live.

A Stash double holds a gallery with a performer and images that do not have that performer
themselves. A real `serve` syncs it; in headless Chromium the user picks the performer in the
Label filter and sees exactly the gallery's images (and the scene). Then Stash adds another
image to the gallery and a sync runs: its tile appears in the filtered view without a reload,
and the tiles already shown are the same DOM nodes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, expect

from tests.doubles.stash import StashDouble
from tests.helpers import cli_json, run_cli, wait_for
from tests.web.support import (
    TILES,
    load_id,
    mark_tiles,
    markers_intact,
    open_gallery,
    start_serve,
    stop_serve,
    tile_ids,
)


@pytest.fixture
def stash() -> Iterator[StashDouble]:
    with StashDouble() as double:
        yield double


def test_filter_by_an_inherited_performer_stays_live(
    tmp_path: Path, stash: StashDouble, context: BrowserContext
) -> None:
    ann = stash.create("performer", name="Ann")
    gallery = stash.create("gallery", title="Beach", links={"performers": [ann]})
    for i in range(3):
        stash.create("image", title=f"beach {i}", links={"galleries": [gallery]})
    for i in range(2):
        stash.create("image", title=f"other {i}")
    home = tmp_path / "home"
    run_cli(home, "source", "add", "stash", stash.url, "--api-key", "stash-key", "--name", "st")
    (report,) = cli_json(home, "sync", env={"GALLERYSYNC_RETRY_BASE_SECONDS": "0.02"})
    assert report["status"] == "ok", report
    serve = start_serve(home, env={"GALLERYSYNC_REMOTE_SYNC_SECONDS": "3600"})
    try:
        api = serve.url + "/api"
        people = httpx.get(api + "/entities", params={"kind": "person"}).json()["entities"]
        (person,) = people
        expected = [
            a["id"]
            for a in httpx.get(api + "/assets", params={"person": person["id"]}).json()["assets"]
        ]
        assert len(expected) == 3

        page = open_gallery(context, serve.url)
        expect(page.locator(TILES)).to_have_count(5)
        select = page.locator('#filters select[name="entity"]')
        expect(select.locator("option", has_text="Ann (3)")).to_have_count(1)
        select.select_option(f"person:{person['id']}")
        expect(page.locator(TILES)).to_have_count(3)
        assert tile_ids(page) == expected
        before = mark_tiles(page)
        loaded = load_id(page)

        stash.tick(1)
        newcomer = stash.create("image", title="beach late")
        stash.create("image", title="elsewhere")  # arrives by the feed too, but must not show
        stash.tick(1)
        stash.add_gallery_images(gallery, [newcomer])
        (source,) = httpx.get(api + "/sources").json()["sources"]
        assert (
            httpx.post(f"{api}/sources/{source['id']}/sync", json={"mode": "smart"}).status_code
            < 300
        )

        expect(page.locator(TILES)).to_have_count(4)
        now = [
            a["id"]
            for a in httpx.get(api + "/assets", params={"person": person["id"]}).json()["assets"]
        ]
        assert tile_ids(page) == now and set(before) < set(now)
        assert markers_intact(page, before)  # the old tiles were not re-rendered
        assert load_id(page) == loaded  # no reload
        wait_for(
            lambda: select.locator("option", has_text="Ann (4)").count() == 1,
            what="the label's count to follow",
        )
    finally:
        context.close()
        stop_serve(serve)
