"""The gallery's own features: infinite scroll over keyset pages, the lightbox with keyboard
navigation and metadata, and filters (source, status, text) applied to pages and to the feed."""

from __future__ import annotations

from playwright.sync_api import BrowserContext, Request, expect

from tests.web.support import TILES, Library, gallery_of, open_gallery, tile, tile_ids


def test_infinite_scroll_loads_keyset_pages(library: Library, context: BrowserContext) -> None:
    library.images(250)
    library.start()
    requests: list[str] = []

    def record(request: Request) -> None:
        if "/api/assets?" in request.url:
            requests.append(request.url)

    context.on("request", record)
    # 50 tiles are ~10 rows at this viewport: far more than a screen, so one page is enough.
    page = open_gallery(context, library.url, "?limit=50")
    tiles = page.locator(TILES)
    expect(tiles).to_have_count(50)
    expect(page.locator("#grid")).to_have_attribute("data-complete", "false")
    assert len(requests) == 1 and "limit=50" in requests[0] and "cursor=" not in requests[0]

    for shown in (100, 150, 200, 250):
        page.locator("#sentinel").scroll_into_view_if_needed()
        expect(tiles).to_have_count(shown)
    expect(page.locator("#grid")).to_have_attribute("data-complete", "true")
    ids = tile_ids(page)
    assert len(set(ids)) == 250
    assert ids == library.asset_ids()  # newest first, every page in place, none twice
    assert len(requests) == 5 and all("cursor=" in url for url in requests[1:])


def test_lightbox_keyboard_and_metadata(library: Library, context: BrowserContext) -> None:
    page = gallery_of(library, context, 4)
    ids = tile_ids(page)
    box = page.locator("#lightbox")
    expect(box).to_be_hidden()

    tile(page, ids[0]).click()
    expect(box).to_be_visible()
    expect(box).to_have_attribute("data-asset-id", ids[0])
    first = library.api("GET", f"/api/assets/{ids[0]}")
    meta = box.locator(".lb-meta")
    expect(meta.locator('[data-field="hash"]')).to_have_text(first["hash"])
    expect(meta.locator('[data-field="format"]')).to_contain_text("JPEG")
    expect(meta.locator('[data-field="dimensions"]')).to_have_text(
        f"{first['width']} × {first['height']}"
    )
    expect(meta.locator('[data-field="size"]')).to_contain_text(f"{first['size']} bytes")
    expect(meta.locator('[data-field="status"]')).to_have_text("present")
    expect(meta.locator('[data-field="places"]')).to_contain_text(first["origins"][0]["path"])
    expect(meta.locator('[data-field="places"]')).to_contain_text("pics")  # the source's name
    expect(meta.locator('[data-field="added"]')).not_to_be_empty()

    page.keyboard.press("ArrowRight")
    expect(box).to_have_attribute("data-asset-id", ids[1])
    page.keyboard.press("ArrowRight")
    expect(box).to_have_attribute("data-asset-id", ids[2])
    page.keyboard.press("ArrowLeft")
    expect(box).to_have_attribute("data-asset-id", ids[1])
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")  # already the first: stays
    expect(box).to_have_attribute("data-asset-id", ids[0])
    page.keyboard.press("Escape")
    expect(box).to_be_hidden()


def test_filters_narrow_the_grid_and_the_feed(library: Library, context: BrowserContext) -> None:
    library.images(3, prefix="top")
    sub = [library.image(f"sub/s{i}.jpg") for i in range(2)]
    other_root = library.home.parent / "other"
    library.add_folder(other_root, name="elsewhere")
    library.image("o1.jpg", folder=other_root)
    library.start()
    page = open_gallery(context, library.url)
    tiles = page.locator(TILES)
    expect(tiles).to_have_count(6)
    filters = page.locator("#filters")

    # Source
    filters.locator("select[name=source]").select_option(label="elsewhere")
    expect(tiles).to_have_count(1)
    assert tile_ids(page) == library.asset_ids(source="elsewhere")
    filters.locator("select[name=source]").select_option(value="")
    expect(tiles).to_have_count(6)

    # Text
    filters.locator("input[name=q]").fill("sub/")
    expect(tiles).to_have_count(2)
    assert tile_ids(page) == library.asset_ids(q="sub/")
    # The feed is filtered the same way: a match appears, a non-match does not.
    library.image("nomatch.jpg")
    library.asset_at("nomatch.jpg")
    library.image("sub/late.jpg")
    late = library.asset_at("sub/late.jpg")
    expect(tiles).to_have_count(3)
    assert tile_ids(page) == [late["id"], *library.asset_ids(q="sub/")[1:]]
    filters.locator("input[name=q]").fill("")
    expect(tiles).to_have_count(8)

    # Status
    sub[0].unlink()
    missing = library.asset_at("sub/s0.jpg")["id"]
    expect(tile(page, missing)).to_have_attribute("data-status", "missing")
    filters.locator("select[name=status]").select_option(value="missing")
    expect(tiles).to_have_count(1)
    assert tile_ids(page) == [missing]
    filters.locator("select[name=status]").select_option(value="present")
    expect(tiles).to_have_count(7)
    assert missing not in tile_ids(page)
    # A trashed asset leaves the view; the trash view shows it.
    victim = tile_ids(page)[0]
    library.api("DELETE", f"/api/assets/{victim}")
    expect(tiles).to_have_count(6)
    filters.locator("select[name=status]").select_option(value="trashed")
    expect(tiles).to_have_count(1)
    expect(tile(page, victim)).to_have_attribute("data-status", "trashed")
