"""Bad input from a ComfyUI server: each case ends in a retried, recorded or refused item with a
clear message, and the sync as a whole goes on. Against the ComfyUI double's fault modes."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from gallerysync.errors import MalformedResponseError
from gallerysync.runtime import Runtime
from gallerysync.sources.comfyui.history import parse_history
from tests.doubles.comfyui import ComfyUIDouble
from tests.helpers import free_port
from tests.sources.remote_support import (
    add_comfyui,
    download_all,
    hash_of,
    png,
    remote_assets,
    sync,
)


def _temp_files(runtime: Runtime) -> list[str]:
    return [str(path) for path in runtime.blobs.temp_files()]


def test_history_500_and_429_are_retried(comfy: ComfyUIDouble, runtime: Runtime) -> None:
    comfy.add_prompt([("a.png", png(1))])
    source = add_comfyui(runtime, comfy.url, download="off")
    comfy.faults.fail("/history", count=1, status=500)
    comfy.faults.fail("/history", count=1, status=429, retry_after=0.2)
    report = sync(runtime, source)
    assert report.status == "ok", report.errors
    assert report.counts["page_retries"] == 2
    assert len(remote_assets(runtime, source)) == 1


def test_history_down_fails_the_run_with_a_reason_and_resumes_later(
    comfy: ComfyUIDouble, runtime: Runtime
) -> None:
    comfy.add_prompt([("a.png", png(1))])
    source = add_comfyui(runtime, comfy.url, download="off")
    comfy.faults.fail("/history", count=10, status=503)
    report = sync(runtime, source)
    assert report.status == "failed"
    assert "HTTP 503" in report.errors[0]
    runs = runtime_runs(runtime)
    assert runs[0]["status"] == "failed" and "503" in (runs[0]["error"] or "")
    comfy.faults.clear()
    assert sync(runtime, source).status == "ok"
    assert len(remote_assets(runtime, source)) == 1


def test_source_down_at_start(tmp_path: Path, runtime: Runtime) -> None:
    source = add_comfyui(runtime, f"http://127.0.0.1:{free_port()}")
    report = sync(runtime, source)
    assert report.status == "failed"
    assert "ComfyUI" in report.errors[0] and "Connect" in report.errors[0]
    assert runtime.source_by_id(source.id).status.value == "error"


def test_malformed_json_is_an_error_not_a_partial_page(
    comfy: ComfyUIDouble, runtime: Runtime
) -> None:
    comfy.add_prompt([("a.png", png(1))])
    source = add_comfyui(runtime, comfy.url, download="off")
    comfy.faults.malformed_json("/history", count=1)
    report = sync(runtime, source)
    assert report.status == "failed"
    assert "not JSON" in report.errors[0]
    assert remote_assets(runtime, source) == []
    assert sync(runtime, source).counts["added"] == 1


def test_a_malformed_entry_names_its_field() -> None:
    good = {"prompt": [1, "p1", {}, {}, []], "outputs": {}, "status": {"messages": []}}
    bad = {**good, "outputs": {"9": {"images": [{"filename": 7}]}}}
    with pytest.raises(MalformedResponseError, match=r"history\['p2'\]\.outputs\['9'\]"):
        parse_history({"p1": good, "p2": bad}, include_temp=False)
    with pytest.raises(MalformedResponseError, match=r"\.prompt should be"):
        parse_history({"p3": {**good, "prompt": [1]}}, include_temp=False)


def test_history_as_comfyui_encodes_it_is_stored_as_its_values() -> None:
    """ComfyUI answers with aiohttp's `json_response`, i.e. `json.dumps`: `", "`/`": "`
    separators and every non-ASCII character escaped. The stored prompt and workflow are the
    same JSON values, compact, and a prompt in any script is stored as itself (searchable)."""
    graph = {"6": {"class_type": "CLIPTextEncode", "inputs": {"text": "灯塔 at dusk, café"}}}
    workflow = {"nodes": [{"id": 6, "widgets_values": ["灯塔 at dusk, café"]}], "v": 0.4}
    plain = {"3": {"inputs": {"seed": 42, "cfg": 7.5}}}
    entry = {
        "prompt": [7, "p1", graph, {"extra_pnginfo": {"workflow": workflow}}, ["9"]],
        "outputs": {"9": {"images": [{"filename": "a.png", "subfolder": "", "type": "output"}]}},
        "status": {
            "status_str": "success",
            "completed": True,
            "messages": [["execution_success", {"prompt_id": "p1", "timestamp": 1700000000123}]],
        },
        "meta": {},
    }
    wire = json.dumps({"p1": entry, "p2": {**entry, "prompt": [8, "p2", plain, {}, []]}})
    assert "\\u706f" in wire and ", " in wire  # as ComfyUI sends it

    first, second = parse_history(wire.encode(), include_temp=False)

    meta = first.items[0].meta
    stored = orjson.dumps(meta).decode()
    assert "灯塔 at dusk, café" in stored and "\\u" not in stored
    assert orjson.loads(stored)["prompt"] == graph
    assert orjson.loads(stored)["workflow"] == workflow
    assert (meta["prompt_number"], first.created_at) == (7, 1700000000123)
    stored = orjson.dumps(second.items[0].meta).decode()
    assert '"prompt":{"3":{"inputs":{"seed":42,"cfg":7.5}}}' in stored  # compact
    assert orjson.loads(stored)["workflow"] is None


def test_a_truncated_history_reply_is_not_json() -> None:
    """msgspec can meet a wrong type before it meets the cut: still "not JSON"."""
    with pytest.raises(MalformedResponseError, match="not JSON"):
        parse_history(b'{"error": "truncated", "items": [{"id": 1,', include_temp=False)


def test_path_traversal_name_is_refused_and_recorded(
    comfy: ComfyUIDouble, runtime: Runtime
) -> None:
    comfy.add_prompt([("../evil.png", b"x")])
    comfy.add_prompt([("fine.png", png(2))], subfolder="../../etc")
    comfy.add_prompt([("good.png", png(3))])
    source = add_comfyui(runtime, comfy.url)
    report = sync(runtime, source)
    assert report.status == "ok"
    assert report.counts["refused"] == 2
    assert any("unsafe filename '../evil.png'" in e for e in report.errors)
    assert any("escapes its directory" in e for e in report.errors)
    assert [r["remote_id"] for r in remote_assets(runtime, source)] == ["output/good.png"]


@pytest.mark.parametrize("fault", ["reset_mid_body", "truncate", "fail"])
def test_broken_downloads_are_retried_and_leave_no_partial_blob(
    comfy: ComfyUIDouble, runtime: Runtime, fault: str
) -> None:
    data = png(5) * 20  # large enough that half a body is a real partial write
    comfy.add_prompt([("big.png", data)])
    source = add_comfyui(runtime, comfy.url)
    sync(runtime, source)
    if fault == "fail":
        comfy.faults.fail("/view", count=1, status=429, retry_after=0.1)
    else:
        getattr(comfy.faults, fault)("/view", count=2)
    report = download_all(runtime, source)
    assert (report.downloaded, report.failed) == (1, 0), report.errors
    (row,) = remote_assets(runtime, source)
    assert row["hash"] == hash_of(data)
    assert _temp_files(runtime) == []
    assert sorted(runtime.blobs.iter_hashes()) == [hash_of(data)]


def test_a_download_that_keeps_failing_is_recorded(comfy: ComfyUIDouble, runtime: Runtime) -> None:
    comfy.add_prompt([("a.png", png(1)), ("b.png", png(2))])
    source = add_comfyui(runtime, comfy.url)
    sync(runtime, source)
    comfy.faults.truncate("/view", count=100)
    report = runtime.download(source_ids=[source.id], concurrency=1)
    assert report.failed == 2 and report.downloaded == 0
    rows = remote_assets(runtime, source)
    assert {r["fetch_status"] for r in rows} == {"failed"}
    assert all("truncated" in (r["fetch_error"] or "") for r in rows)
    assert _temp_files(runtime) == [] and list(runtime.blobs.iter_hashes()) == []
    comfy.faults.clear()
    retried = runtime.download(
        source_ids=[source.id], asset_ids=sorted(report.failed_ids), concurrency=1
    )
    assert retried.downloaded == 2


def test_a_deleted_file_is_a_404_recorded_as_missing(
    comfy: ComfyUIDouble, runtime: Runtime
) -> None:
    comfy.add_prompt([("gone.png", png(1))], write_files=False)  # history lists a deleted file
    comfy.add_prompt([("here.png", png(2))])
    source = add_comfyui(runtime, comfy.url)
    sync(runtime, source)
    report = download_all(runtime, source)
    assert (report.downloaded, report.failed) == (1, 1)
    rows = {r["remote_id"]: r for r in remote_assets(runtime, source)}
    gone = rows["output/gone.png"]
    assert gone["fetch_status"] == "failed" and "HTTP 404" in gone["fetch_error"]
    assert gone["status"] == "missing" and gone["asset_status"] == "missing"
    assert rows["output/here.png"]["asset_status"] == "present"


def test_slow_responses_still_complete(comfy: ComfyUIDouble, runtime: Runtime) -> None:
    comfy.add_prompt([("slow.png", png(1))])
    source = add_comfyui(runtime, comfy.url)
    comfy.faults.delay("/history", 0.3)
    comfy.faults.delay("/view", 0.3)
    assert sync(runtime, source).status == "ok"
    assert download_all(runtime, source).downloaded == 1


def runtime_runs(runtime: Runtime) -> list[dict[str, object]]:
    from gallerysync.catalog.runs import list_runs

    with runtime.catalog.read() as conn:
        return [r.__dict__ for r in list_runs(conn)]
