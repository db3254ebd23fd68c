"""The ComfyUI connector end to end against the ComfyUI double (a real uvicorn port)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gallerysync.runtime import Runtime
from tests.doubles.comfyui import ComfyUIDouble
from tests.sources.remote_support import (
    add_comfyui,
    download_all,
    hash_of,
    home_runtime,
    png,
    remote_assets,
    sync,
)


def test_sync_lists_downloads_and_keeps_metadata(comfy: ComfyUIDouble, runtime: Runtime) -> None:
    files = {f"img_{i:05}_.png": png(i) for i in range(6)}
    names = list(files)
    first = comfy.add_prompt([(n, files[n]) for n in names[:3]])
    comfy.add_prompt([(n, files[n]) for n in names[3:]], subfolder="portraits")
    # text, audio and an animated WebP: only the WebP (listed under `images`) is a picture
    comfy.add_prompt([], extra_outputs=True)
    source = add_comfyui(runtime, comfy.url)

    report = sync(runtime, source)

    assert report.status == "ok", report.errors
    assert report.counts["added"] == 7
    rows = remote_assets(runtime, source)
    assert sorted(r["remote_id"] for r in rows) == sorted(
        [f"output/{n}" for n in names[:3]]
        + [f"output/portraits/{n}" for n in names[3:]]
        + ["output/ComfyUI_00001_.webp"]
    )
    fetched = download_all(runtime, source)
    assert (fetched.downloaded, fetched.failed) == (7, 0), fetched.errors
    rows = [r for r in remote_assets(runtime, source) if r["remote_id"].endswith(".png")]
    for row in rows:
        name = row["remote_id"].rpartition("/")[2]
        assert row["hash"] == hash_of(files[name])
        assert row["fetch_status"] == "done"
        assert (row["width"], row["height"]) == (64, 64)
    by_prompt = [r for r in rows if r["meta"]["prompt_id"] == first]
    assert len(by_prompt) == 3
    entry = comfy.history_entry(first)
    assert entry is not None
    success = next(m for m in entry["status"]["messages"] if m[0] == "execution_success")
    assert {r["created_at"] for r in by_prompt} == {success[1]["timestamp"]}
    assert by_prompt[0]["meta"]["prompt"] == entry["prompt"][2]
    assert by_prompt[0]["meta"]["workflow"] == entry["prompt"][3]["extra_pnginfo"]["workflow"]

    # Nothing is downloaded twice: a second sync and download move no bytes.
    sent = comfy.view_bytes_sent
    again = sync(runtime, source)
    assert again.skipped_types == ["image"]  # smart: the newest prompt is known
    assert download_all(runtime, source).downloaded == 0
    assert comfy.view_bytes_sent == sent


def test_prompt_text_is_searchable(comfy: ComfyUIDouble, runtime: Runtime) -> None:
    graph = {
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse at dusk"}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x", "images": ["6", 0]}},
    }
    comfy.add_prompt([("x_00001_.png", png(1))], graph=graph)
    comfy.add_prompt([("y_00001_.png", png(2))])
    source = add_comfyui(runtime, comfy.url, download="off")
    sync(runtime, source)
    from gallerysync.catalog.assets import find_asset_ids

    with runtime.catalog.read() as conn:
        found = find_asset_ids(conn, owner_id=runtime.catalog.default_owner_id, text="lighthouse")
    rows = {r["asset_id"]: r for r in remote_assets(runtime, source)}
    assert [rows[asset_id]["remote_id"] for _, asset_id in found] == ["output/x_00001_.png"]


def test_restart_and_eviction_delete_nothing(comfy: ComfyUIDouble, runtime: Runtime) -> None:
    for i in range(60):  # history_max 50: the oldest entries are evicted
        comfy.add_prompt([(f"e_{i:05}_.png", png(i))])
    source = add_comfyui(runtime, comfy.url, download="off")
    assert sync(runtime, source).counts["added"] == 51  # 10,001-style steady state: max + 1
    comfy.restart()  # history emptied, outputs stay on disk
    comfy.add_prompt([("after_restart.png", png(99))])
    report = sync(runtime, source)
    assert report.status == "ok"
    assert report.counts["added"] == 1
    full = sync(runtime, source, mode="full")
    assert full.counts["deleted"] == 0
    rows = remote_assets(runtime, source)
    assert len(rows) == 52
    assert {r["status"] for r in rows} == {"present"}
    comfy.clear_history()
    assert sync(runtime, source, mode="full").counts["deleted"] == 0
    assert {r["status"] for r in remote_assets(runtime, source)} == {"present"}


def test_incremental_widens_until_a_known_prompt(comfy: ComfyUIDouble, runtime: Runtime) -> None:
    comfy.history_max = 10_000
    for i in range(5):
        comfy.add_prompt([(f"a_{i}.png", png(i))])
    source = add_comfyui(runtime, comfy.url, download="off")
    sync(runtime, source)
    for i in range(300):  # more than the first 64-entry window: it must widen
        comfy.add_prompt([(f"b_{i}.png", png(1000 + i))])
    report = sync(runtime, source)
    assert report.counts["added"] == 300
    assert report.counts["unchanged"] == 0
    assert len(remote_assets(runtime, source)) == 305


def test_reused_filename_is_a_new_asset_version(comfy: ComfyUIDouble, runtime: Runtime) -> None:
    comfy.add_prompt([("reuse_00001_.png", png(1))])
    source = add_comfyui(runtime, comfy.url)
    sync(runtime, source)
    download_all(runtime, source)
    (old,) = remote_assets(runtime, source)
    # The newest file is deleted, and the next generation gets its name (ComfyUI's counter).
    comfy.delete_file("reuse_00001_.png")
    comfy.add_prompt([("reuse_00001_.png", png(2))])
    sync(runtime, source)
    download_all(runtime, source)
    (new,) = remote_assets(runtime, source)
    assert new["hash"] == hash_of(png(2))
    assert new["asset_id"] != old["asset_id"]
    from gallerysync.catalog.assets import get_asset

    with runtime.catalog.read() as conn:
        previous = get_asset(conn, old["asset_id"])
    assert previous.hash == hash_of(png(1))  # still reachable, bytes kept
    assert runtime.blobs.exists(previous.hash)


def test_identical_prompts_share_one_file_downloaded_once(
    comfy: ComfyUIDouble, runtime: Runtime
) -> None:
    comfy.add_prompt([("same_00001_.png", png(7))])
    source = add_comfyui(runtime, comfy.url)
    sync(runtime, source)
    download_all(runtime, source)
    sent = comfy.view_bytes_sent
    comfy.add_prompt([("same_00001_.png", png(7))], write_files=False, cached=True)
    report = sync(runtime, source)
    assert report.counts["updated"] == 1
    fetched = download_all(runtime, source)
    assert fetched.not_modified == 1 and fetched.downloaded == 0
    assert comfy.view_bytes_sent == sent  # revalidated by ETag: 304, no body
    assert len(remote_assets(runtime, source)) == 1


def test_temp_outputs_only_when_asked(comfy: ComfyUIDouble, tmp_path: Path) -> None:
    comfy.add_prompt([("ComfyUI_temp_0001.png", png(1))], type="temp")
    comfy.add_prompt([("kept.png", png(2))])
    plain = home_runtime(tmp_path / "plain")
    with_temp = home_runtime(tmp_path / "with-temp")
    try:
        a = add_comfyui(plain, comfy.url, download="off")
        b = add_comfyui(with_temp, comfy.url, download="off", include_temp=True)
        sync(plain, a)
        sync(with_temp, b)
        assert [r["remote_id"] for r in remote_assets(plain, a)] == ["output/kept.png"]
        assert sorted(r["remote_id"] for r in remote_assets(with_temp, b)) == [
            "output/kept.png",
            "temp/ComfyUI_temp_0001.png",
        ]
    finally:
        plain.close()
        with_temp.close()


def test_a_source_added_twice_is_refused(comfy: ComfyUIDouble, runtime: Runtime) -> None:
    from gallerysync.errors import ConflictError

    add_comfyui(runtime, comfy.url + "/")
    with pytest.raises(ConflictError, match="already added"):
        add_comfyui(runtime, comfy.url)


def test_a_download_larger_than_one_catalog_read(comfy: ComfyUIDouble, runtime: Runtime) -> None:
    """Origins are read `LOAD_CHUNK` at a time while the workers download: every one of more
    than one chunk is fetched once, and progress counts them all."""
    from gallerysync.sync.download import LOAD_CHUNK

    count = 45 * 7
    assert count > LOAD_CHUNK
    comfy.add_prompts_bulk(45, 7, png)
    source = add_comfyui(runtime, comfy.url, download="off")
    assert sync(runtime, source).counts["added"] == count
    seen: list[tuple[int, int]] = []

    fetched = download_all(
        runtime, source, progress=lambda done, total, _: seen.append((done, total))
    )

    assert (fetched.downloaded, fetched.failed, fetched.skipped) == (count, 0, 0), fetched.errors
    assert seen[-1] == (count, count) and len(seen) == count
    rows = remote_assets(runtime, source)
    assert sorted(r["hash"] for r in rows) == sorted(hash_of(png(i)) for i in range(count))
    assert comfy.view_bytes_sent == sum(len(png(i)) for i in range(count))


def test_a_failed_catalog_read_stops_every_download_worker() -> None:
    import asyncio

    from gallerysync.sync.download import LOAD_CHUNK, _OriginFeed

    ids = [f"o{i}" for i in range(LOAD_CHUNK * 3)]
    reads: list[int] = []

    def load(chunk: list[str]) -> dict[str, Any]:
        reads.append(len(chunk))
        if len(reads) == 2:
            raise OSError("disk I/O error")
        return {origin_id: None for origin_id in chunk}

    async def run() -> list[BaseException | int]:
        feed = _OriginFeed(ids, load)

        async def worker() -> int:
            taken = 0
            while await feed.next() is not None:
                taken += 1
                await asyncio.sleep(0)
            return taken

        return await asyncio.gather(*(worker() for _ in range(4)), return_exceptions=True)

    outcomes = asyncio.run(run())
    assert all(isinstance(o, OSError) for o in outcomes), outcomes
    assert reads == [LOAD_CHUNK, LOAD_CHUNK]  # the third chunk was never read
