"""Helpers for the browser tests: a library (home + watched folders + a real `serve`) and
page helpers that read the gallery's DOM contract (docs/web.md)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import BrowserContext, Page, expect

from tests.helpers import ServeProcess, run_cli, wait_for, write_image

TILES = "#grid [data-asset-id]"
SERVE_ENV = {
    "GALLERYSYNC_SETTLE_SECONDS": "0.2",
    "GALLERYSYNC_HEARTBEAT_SECONDS": "1",
}
# How long a SIGTERM-ed serve may take before it is killed. An open event stream keeps
# `serve` from exiting on SIGTERM (see docs/web.md, "Known server issues"), and every page
# under test holds one.
GRACEFUL_STOP_SECONDS = 3.0


def start_serve(
    home: Path, port: int | None = None, env: dict[str, str] | None = None
) -> ServeProcess:
    """`serve` on `home`, once healthy and (when /healthz tells: auth off) its start-up scan
    is done."""
    serve = ServeProcess(home, env={**SERVE_ENV, **(env or {})}, port=port)
    health = serve.wait_healthy()
    if "startup_scan" in health:
        wait_for(lambda: (serve.health() or {}).get("startup_scan") == "done", what="start-up scan")
    return serve


def stop_serve(serve: ServeProcess) -> None:
    """SIGTERM, and SIGKILL when open streams keep it running."""
    if serve.proc.poll() is not None:
        serve.stop()
        return
    try:
        serve.stop(timeout=GRACEFUL_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        serve.kill()


@dataclass
class Library:
    """A gallerysync home with watched folders, and the `serve` that runs on it."""

    home: Path
    root: Path
    serve: ServeProcess | None = None
    folders: list[Path] = field(default_factory=list)
    seed: int = 0
    env: dict[str, str] = field(default_factory=dict)  # extra settings for `serve`
    token: str | None = None  # a bearer token for `api()` (auth on)

    def add_folder(self, path: Path, name: str | None = None) -> None:
        path.mkdir(parents=True, exist_ok=True)
        extra = ["--name", name] if name else []
        run_cli(self.home, "source", "add", "folder", str(path), *extra)
        self.folders.append(path)

    def image(self, relative: str, folder: Path | None = None) -> Path:
        """Write a new, unique image (its bytes differ from every other one written here)."""
        self.seed += 1
        path = (folder or self.root) / relative
        write_image(path, 10_000 + self.seed)
        return path

    def images(self, count: int, prefix: str = "img", folder: Path | None = None) -> list[Path]:
        return [self.image(f"{prefix}{i:04}.jpg", folder) for i in range(count)]

    def start(self, port: int | None = None) -> ServeProcess:
        if self.root not in self.folders:
            self.add_folder(self.root)
        self.serve = start_serve(self.home, port, self.env)
        return self.serve

    def stop(self) -> None:
        if self.serve is not None:
            stop_serve(self.serve)

    @property
    def running(self) -> ServeProcess:
        assert self.serve is not None, "start() first"
        return self.serve

    @property
    def url(self) -> str:
        return self.running.url

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        if self.token:
            bearer = {"Authorization": f"Bearer {self.token}"}
            kwargs["headers"] = {**bearer, **kwargs.get("headers", {})}
        response = httpx.request(method, self.url + path, timeout=30, **kwargs)
        response.raise_for_status()
        return response.json()

    def asset_ids(self, **filters: str) -> list[str]:
        """Every asset the API lists (newest first), following `next`."""
        ids: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 500, **filters}
            if cursor:
                params["cursor"] = cursor
            page = self.api("GET", "/api/assets", params=params)
            ids += [a["id"] for a in page["assets"]]
            cursor = page["next"]
            if not cursor:
                return ids

    def asset_at(self, relative: str) -> dict[str, Any]:
        """The asset registered for this path (waits for the watcher)."""

        def find() -> dict[str, Any] | None:
            page = self.api("GET", "/api/assets", params={"q": relative, "limit": 50})
            for asset in page["assets"]:
                if any(o["path"] == relative for o in asset["origins"]):
                    return dict(asset)
            return None

        return wait_for(find, what=f"{relative} to be registered")


def open_gallery(context: BrowserContext, url: str, query: str = "") -> Page:
    """A new tab on the gallery, once its Live indicator says `live`. `window.__loadId` is set
    once: if the page ever reloads, it is gone."""
    page = context.new_page()
    page.goto(url + "/" + query)
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    page.evaluate("window.__loadId = 'load-' + Math.random()")
    return page


def gallery_of(library: Library, context: BrowserContext, count: int) -> Page:
    """`count` new images, `serve` started on them, and a tab on the gallery that is live and
    shows all of them."""
    library.images(count)
    library.start()
    page = open_gallery(context, library.url)
    expect(page.locator(TILES)).to_have_count(count)
    return page


def tile_ids(page: Page) -> list[str]:
    ids: list[str] = page.eval_on_selector_all(TILES, "els => els.map(e => e.dataset.assetId)")
    return ids


def tile(page: Page, asset_id: str) -> Any:
    return page.locator(f'#grid [data-asset-id="{asset_id}"]')


def mark_tiles(page: Page) -> list[str]:
    """Put a JS property on every tile node now shown; `markers_intact` checks they are the
    same nodes later (a re-render would create new nodes without it)."""
    ids: list[str] = page.evaluate(
        """() => [...document.querySelectorAll('#grid [data-asset-id]')].map(node => {
            node.__marker = 'mark-' + node.dataset.assetId;
            return node.dataset.assetId;
        })"""
    )
    return ids


def markers_intact(page: Page, ids: list[str]) -> bool:
    return bool(
        page.evaluate(
            """ids => ids.every(id => {
                const node = document.querySelector(`#grid [data-asset-id="${id}"]`);
                return node !== null && node.__marker === 'mark-' + id;
            })""",
            ids,
        )
    )


def watch_grid_mutations(page: Page) -> None:
    """Count tiles added to and removed from #grid from now on (window.__gridMutations)."""
    page.evaluate(
        """() => {
            const seen = window.__gridMutations = {added: [], removed: []};
            new MutationObserver(records => {
                for (const r of records) {
                    for (const n of r.addedNodes) seen.added.push(n.dataset.assetId);
                    for (const n of r.removedNodes) seen.removed.push(n.dataset.assetId);
                }
            }).observe(document.getElementById('grid'), {childList: true});
        }"""
    )


def grid_mutations(page: Page) -> dict[str, list[str]]:
    result: dict[str, list[str]] = page.evaluate("window.__gridMutations")
    return result


def load_id(page: Page) -> str | None:
    value: str | None = page.evaluate("window.__loadId || null")
    return value
