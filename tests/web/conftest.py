"""Browser tests of the web gallery: Debian's Chromium, headless, driven by Playwright (sync
API) against a real `gallerysync serve` on a free loopback port.

One browser per test session; each test gets its own home, folder and `serve`, and its own
browser context (closed before its `serve` stops). Without /usr/bin/chromium the tests skip —
unless `GALLERYSYNC_REQUIRE_SERVICES=1` (CI), where a missing browser is a failure. Playwright
never downloads a browser here (`playwright install` is not used).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, expect, sync_playwright

from tests.web.support import Library

CHROMIUM = Path(os.environ.get("GALLERYSYNC_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TIMEOUT_MS = 20_000

expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        reason = f"the web gallery tests need Chromium at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("GALLERYSYNC_REQUIRE_SERVICES") == "1":
            pytest.fail(reason + " (GALLERYSYNC_REQUIRE_SERVICES=1)")
        pytest.skip(reason)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def library(tmp_path: Path) -> Iterator[Library]:
    """A home and a watched folder `pics`; the test writes files, then calls `start()`."""
    lib = Library(home=tmp_path / "home", root=tmp_path / "pics")
    lib.root.mkdir()
    try:
        yield lib
    finally:
        lib.stop()


@pytest.fixture
def context(library: Library, browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile (cookies, cache). It depends on `library` so that it closes
    first: its open event streams would otherwise hold up the server's shutdown."""
    ctx = browser.new_context(viewport={"width": 1000, "height": 700})
    ctx.set_default_timeout(TIMEOUT_MS)
    try:
        yield ctx
    finally:
        ctx.close()
