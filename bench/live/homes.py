"""The gallerysync homes the live servers run on, built through the CLI and reused."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import run
from live.servers import GALLERYSYNC_ENV
from run import log

HOME_BUILDER_VERSION = 1


def gallerysync_cli(*args: str) -> str:
    """Run the gallerysync CLI (bench environment); its stdout, or RuntimeError."""
    done = subprocess.run(
        [*run.gallerysync_command(), *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **GALLERYSYNC_ENV},
    )
    if done.returncode != 0:
        raise RuntimeError(f"gallerysync {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return done.stdout


def add_and_sync(home: Path, tree: Path, want: int) -> None:
    gallerysync_cli("--home", str(home), "source", "add", "folder", str(tree), "--json")
    reports = json.loads(gallerysync_cli("--home", str(home), "sync", "--json"))
    if len(reports) != 1 or reports[0]["status"] != "ok" or reports[0]["added"] != want:
        raise RuntimeError(f"building {home}: sync reported {reports}")


def _migrations() -> list[str]:
    import gallerysync

    versions = Path(gallerysync.__file__).parent / "catalog" / "migrations" / "versions"
    return sorted(p.name for p in versions.glob("[0-9]*.py"))


def ensure_assets_home(data: Path, tree: Path, assets: int) -> Path:
    """A home with the tree registered (`source add` + `sync` through the CLI), reused while
    its marker matches. Never served itself: every serve gets a copy."""
    import gallerysync

    base = data / "live" / f"assets-{assets}"
    home = base / "home"
    sd_id = tree / "SD_ID"
    params = {
        "kind": "live-assets",
        "assets": assets,
        "tree": str(tree),
        "tree_params": json.loads(tree.with_name(tree.name + ".complete.json").read_text()),
        "sd_id": sd_id.read_text().strip() if sd_id.exists() else None,
        "gallerysync": gallerysync.__version__,
        "migrations": _migrations(),
        "builder": HOME_BUILDER_VERSION,
    }
    if run._tree_ready(home, params):
        log(f"reusing {home} ({assets:,} assets)")
        return home
    log(f"building a home with {assets:,} assets from {tree} (CLI add + sync) ...")
    started = time.perf_counter()
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    add_and_sync(home, tree, assets)
    params["sd_id"] = sd_id.read_text().strip()
    run._mark_ready(home, params)
    log(f"  built in {time.perf_counter() - started:.1f}s")
    return home


def ensure_few_tree(data: Path, count: int) -> Path:
    tree = data / "live" / "few"
    params = {"kind": "few", "files": count, "generator": run.GENERATOR_VERSION}
    if not run._tree_ready(tree, params):
        run._reset_tree(tree)
        for index in range(count):
            (tree / f"f{index}.png").write_bytes(run._tiny_png(16_000_000 + index))
        run._mark_ready(tree, params)
    return tree


def first_asset_id(home: Path) -> str:
    with run.catalog_ro(home) as conn:
        return str(conn.execute("SELECT id FROM assets ORDER BY id LIMIT 1").fetchone()[0])


def copy_home(source: Path, target: Path) -> Path:
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)
    return target
