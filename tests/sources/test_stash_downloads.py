"""Phase 2 for Stash: bytes fetched with the API key and verified; two Stash images with the
same bytes become one asset, and the counts follow (distinct assets, not origins)."""

from __future__ import annotations

from pathlib import Path

from tests.doubles.stash import StashDouble, png_bytes
from tests.sources.remote_support import download_all, home_runtime, remote_assets, sync
from tests.sources.stash_support import add_stash, catalog_view


def test_same_bytes_merge_into_one_asset_and_counts_follow(tmp_path: Path) -> None:
    with StashDouble() as stash:
        ann = stash.create("performer", name="Ann")
        red, blue = stash.create("tag", name="red"), stash.create("tag", name="blue")
        same = png_bytes(7)
        stash.create("image", data=same, links={"performers": [ann], "tags": [red]})
        stash.create("image", data=same, links={"performers": [ann], "tags": [blue]})
        stash.create("image", links={"tags": [red]})
        rt = home_runtime(tmp_path / "home")
        try:
            source = add_stash(rt, stash, download="on-demand")
            assert sync(rt, source, "full").status == "ok"
            counts = {k: v[2] for k, v in catalog_view(rt, source)["entities"].items()}
            assert counts == {f"performer:{ann}": 2, f"tag:{red}": 2, f"tag:{blue}": 1}
            report = download_all(rt, source)
            assert report.downloaded == 3 and report.failed == 0
            rows = remote_assets(rt, source)
            assert len({r["asset_id"] for r in rows}) == 2  # the twins share one asset
            assert all(r["hash"] and r["fetch_status"] == "done" for r in rows)
            counts = {k: v[2] for k, v in catalog_view(rt, source)["entities"].items()}
            assert counts == {f"performer:{ann}": 1, f"tag:{red}": 2, f"tag:{blue}": 1}
            stash.destroy("image", 3)
            assert sync(rt, source, "smart").status == "ok"
            counts = {k: v[2] for k, v in catalog_view(rt, source)["entities"].items()}
            assert counts == {f"performer:{ann}": 1, f"tag:{red}": 1, f"tag:{blue}": 1}
        finally:
            rt.close()
