"""The sources page (#/sources: state, last sync, counts, progress, "Sync now") and the storage
inspector page (#/inspect)."""

from __future__ import annotations

import json
import re

from playwright.sync_api import BrowserContext, expect

from tests.web.support import Library, open_gallery

# Every state of a visible progress bar on the sources page (window.__progress).
RECORD_PROGRESS = """() => {
    window.__progress = [];
    new MutationObserver(() => {
        for (const bar of document.querySelectorAll('.source .sync-progress')) {
            if (bar.hidden) continue;
            const value = bar.getAttribute('value');
            if (value !== null) window.__progress.push({value, max: bar.getAttribute('max')});
        }
    }).observe(document.querySelector('.sources-list'), {subtree: true, attributes: true});
}"""


def test_sources_page_shows_state_and_sync_now_starts_a_sync(
    library: Library, context: BrowserContext
) -> None:
    library.images(3)
    library.start()
    source = library.api("GET", "/api/sources")["sources"][0]
    startup_run = source["last_run"]
    assert startup_run is not None and startup_run["status"] != "running"

    page = open_gallery(context, library.url, "#/sources")
    card = page.locator(f'.source[data-source-id="{source["id"]}"]')
    expect(card).to_be_visible()
    expect(card.locator(".source-name")).to_have_text("pics")
    expect(card.locator(".source-status")).to_have_text(source["status"])
    expect(card.locator('[data-field="root"]')).to_have_text(str(library.root))
    expect(card.locator(".last-run")).to_have_attribute("data-run-id", startup_run["id"])
    expect(card.locator('[data-field="counts"]')).to_contain_text("3 added")
    expect(page.locator("#grid")).to_be_hidden()

    with page.expect_request(
        lambda r: r.method == "POST" and r.url.endswith(f"/api/sources/{source['id']}/sync")
    ) as request:
        card.locator('button[data-sync="full"]').click()
    assert json.loads(request.value.post_data or "{}") == {"mode": "full"}
    last_run = card.locator(".last-run")
    expect(last_run).not_to_have_attribute("data-run-id", startup_run["id"])
    expect(last_run).not_to_have_attribute("data-run-status", "running")
    expect(last_run).to_contain_text("full")
    runs = library.api("GET", "/api/sync/runs", params={"source": source["id"]})["runs"]
    expect(last_run).to_have_attribute("data-run-id", runs[0]["id"])
    assert runs[0]["mode"] == "full"
    expect(card.locator('[data-field="counts"]')).to_contain_text("3 unchanged")
    expect(card.locator(".sync-progress")).to_be_hidden()
    expect(card.locator('button[data-sync="smart"]')).to_be_enabled()

    # The header's navigation goes back to the grid.
    page.locator('.nav a[data-view="gallery"]').click()
    expect(page.locator("#grid [data-asset-id]")).to_have_count(3)


def test_sources_page_follows_a_sync_live(library: Library, context: BrowserContext) -> None:
    """A source added while the page is open appears; its first scan shows a progress bar
    fed by `sync_run` entries (small batches, one hashing thread: slow enough to watch)."""
    library.images(1)
    library.env.update({"GALLERYSYNC_SCAN_BATCH_SIZE": "20", "GALLERYSYNC_HASH_WORKERS": "1"})
    library.start()
    page = open_gallery(context, library.url, "#/sources")
    expect(page.locator(".source")).to_have_count(1)
    page.evaluate(RECORD_PROGRESS)
    more = library.home.parent / "more"
    for i in range(400):
        library.image(f"m{i:03}.png", folder=more)

    added = library.api("POST", "/api/sources", json={"kind": "folder", "path": str(more)})
    card = page.locator(f'.source[data-source-id="{added["id"]}"]')
    expect(card.locator(".source-name")).to_have_text("more")
    expect(card.locator(".last-run")).to_have_attribute("data-run-status", "ok")
    expect(card.locator('[data-field="counts"]')).to_contain_text("400 added")
    expect(card.locator(".sync-progress")).to_be_hidden()
    seen = page.evaluate("window.__progress")
    assert [s for s in seen if s["max"] == "400" and 0 < int(s["value"]) < 400], seen


def test_inspector_page_renders_the_report(library: Library, context: BrowserContext) -> None:
    library.images(2)
    (library.root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    library.start()
    report = library.api("GET", "/api/inspect")
    page = open_gallery(context, library.url, "#/inspect")
    section = page.locator(".storage-dir")
    expect(section).to_have_count(1)
    expect(section.locator(".storage-root")).to_have_text(str(library.root))
    expect(section.locator('[data-field="registered"]')).to_have_text("2")
    expect(section.locator('[data-field="errored"]')).to_have_text(
        str(report["storage_dirs"][0]["errored"])
    )
    expect(section.locator('[data-field="files_on_disk"]')).to_have_text(
        str(report["storage_dirs"][0]["files_on_disk"])
    )
    expect(page.locator('[data-field="assets-present"]')).to_have_text("2")
    expect(page.locator(".inspect-state")).to_have_text(re.compile(r"^As of "))
