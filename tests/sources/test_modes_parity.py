"""Full, incremental and smart sync reach the same catalog from the same source history.

Three catalogs follow one ComfyUI double through a scripted history — new prompts, a cached
re-run pointing at an existing file, a reused file name, history eviction, a server restart, an
error prompt with partial outputs — each syncing at the same moments with a different mode. The
post-processing (downloads, merges, status) is the same pipeline, so the catalogs must agree on
every origin, version, hash, status and creation time.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from gallerysync.domain import now_ms
from gallerysync.runtime import Runtime
from tests.doubles.comfyui import ComfyUIDouble
from tests.sources.remote_support import add_comfyui, catalog_view, download_all, home_runtime, png

Step = Callable[[ComfyUIDouble], None]


def _steps() -> list[Step]:
    counter = iter(range(10_000))

    def prompts(n: int, per: int = 2, **kw: object) -> Step:
        def step(comfy: ComfyUIDouble) -> None:
            for _ in range(n):
                i = next(counter)
                comfy.add_prompt([(f"g_{i:05}_{k}.png", png(i * 10 + k)) for k in range(per)], **kw)  # type: ignore[arg-type]

        return step

    def cached_rerun(comfy: ComfyUIDouble) -> None:
        comfy.add_prompt([("g_00000_0.png", png(0))], write_files=False, cached=True)

    def reuse_name(comfy: ComfyUIDouble) -> None:
        comfy.delete_file("g_00001_1.png")
        comfy.add_prompt([("g_00001_1.png", png(99_999))])

    def restart(comfy: ComfyUIDouble) -> None:
        comfy.restart()

    return [
        prompts(5),
        prompts(80),  # beyond the first window: incremental widens
        cached_rerun,
        reuse_name,
        prompts(3, status="error"),
        prompts(40),  # history_max 100: the oldest entries are evicted
        restart,
        prompts(4),
    ]


@pytest.mark.parametrize("download", ["auto"])
def test_full_incremental_and_smart_agree(tmp_path: Path, download: str) -> None:
    modes = ("full", "incremental", "smart")
    runtimes: dict[str, Runtime] = {m: home_runtime(tmp_path / m) for m in modes}
    with ComfyUIDouble(tmp_path / "comfy", history_max=100) as comfy:
        sources = {m: add_comfyui(rt, comfy.url, download=download) for m, rt in runtimes.items()}
        try:
            for step in _steps():
                before = now_ms()
                step(comfy)
                for mode, rt in runtimes.items():
                    source = rt.source_by_id(sources[mode].id)
                    if mode == "incremental":
                        report = rt.sync_remote(source, mode="incremental", since=before - 1)
                    else:
                        report = rt.sync_remote(source, mode=mode)
                    assert report.status == "ok", (mode, report.errors)
                    download_all(rt, source)
            views = {m: catalog_view(runtimes[m], sources[m]) for m in modes}
        finally:
            for rt in runtimes.values():
                rt.close()
    assert views["incremental"] == views["full"]
    assert views["smart"] == views["full"]
    origins = [row for row in views["full"] if row[0] != "assets"]
    assert len(origins) == 2 * (5 + 80 + 3 + 40 + 4)  # every file, each exactly once
    assert {row[1] for row in origins} == {"present"}  # eviction and restart deleted nothing
