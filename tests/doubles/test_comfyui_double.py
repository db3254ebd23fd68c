"""The ComfyUI double against the facts it must reproduce (see tests/doubles/comfyui.py).

Plain sync tests with httpx against the running double; the websocket ones drive an aiohttp
client inside ``asyncio.run``. Nothing waits on a sleep: ordering is proven by the messages
themselves (a triggered broadcast, or a ping whose pong must come first).
"""

from __future__ import annotations

import asyncio
import email.utils
import io
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from PIL import Image

from tests.doubles.comfyui import (
    COMFYUI_VERSION,
    MAXIMUM_HISTORY_SIZE,
    ComfyUIDouble,
    default_graph,
    sample_png,
)
from tests.helpers import wait_for

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def double(tmp_path: Path) -> Iterator[ComfyUIDouble]:
    with ComfyUIDouble(tmp_path / "comfy") as d:
        yield d


@pytest.fixture
def client(double: ComfyUIDouble) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=double.url, timeout=30) as c:
        yield c


def history_keys(client: httpx.Client, **params: Any) -> list[str]:
    response = client.get("/history", params=params)
    assert response.status_code == 200
    return list(response.json())


# --- /history --------------------------------------------------------------------------------


def test_history_entry_is_what_comfyui_stores(double: ComfyUIDouble, client: httpx.Client) -> None:
    png = sample_png(1)
    pid = double.add_prompt(
        [("ComfyUI_00001_.png", png), ("ComfyUI_00002_.png", png)],
        started_ms=1_700_000_000_000,
        client_id="frontend-tab",
    )
    response = client.get("/history")
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    body = response.json()
    assert list(body) == [pid]
    entry = body[pid]
    assert list(entry) == ["prompt", "outputs", "status", "meta"]

    number, prompt_id, graph, extra_data, outputs_to_execute = entry["prompt"]
    assert (number, prompt_id, outputs_to_execute) == (0, pid, ["9"])
    assert graph["9"]["class_type"] == "SaveImage"
    assert graph["9"]["inputs"]["images"] == ["8", 0]
    assert list(extra_data) == ["extra_pnginfo", "client_id", "create_time"]
    assert extra_data["client_id"] == "frontend-tab"
    assert extra_data["create_time"] == 1_700_000_000_000
    workflow = extra_data["extra_pnginfo"]["workflow"]
    assert {n["type"] for n in workflow["nodes"]} >= {"KSampler", "SaveImage"}

    ref = {"subfolder": "", "type": "output"}
    assert entry["outputs"] == {
        "9": {
            "images": [
                {"filename": "ComfyUI_00001_.png", **ref},
                {"filename": "ComfyUI_00002_.png", **ref},
            ]
        }
    }
    status = entry["status"]
    assert (status["status_str"], status["completed"]) == ("success", True)
    assert status["messages"] == [
        ["execution_start", {"prompt_id": pid, "timestamp": 1_700_000_000_000}],
        ["execution_cached", {"nodes": [], "prompt_id": pid, "timestamp": 1_700_000_000_002}],
        ["execution_success", {"prompt_id": pid, "timestamp": 1_700_000_001_500}],
    ]
    assert entry["meta"] == {
        "9": {"node_id": "9", "display_node": "9", "parent_node": None, "real_node_id": "9"}
    }

    assert client.get(f"/history/{pid}").json() == {pid: entry}
    assert client.get("/history/no-such-prompt").json() == {}
    assert client.get("/api/history").json() == body
    assert double.history_entry(pid) == entry
    assert double.add_prompt() != pid
    assert double.history_entry(double.history_ids()[-1])["prompt"][0] == 1  # type: ignore[index]


def test_history_max_items_and_offset(double: ComfyUIDouble, client: httpx.Client) -> None:
    ids = [double.add_prompt() for _ in range(5)]
    assert double.history_ids() == ids
    assert history_keys(client) == ids
    assert history_keys(client, max_items=2) == ids[-2:]  # newest K, oldest → newest
    assert history_keys(client, max_items=10) == ids
    assert history_keys(client, max_items=2, offset=1) == ids[1:3]  # offset from the oldest
    assert history_keys(client, offset=3) == ids[3:]
    assert history_keys(client, offset=0, max_items=1) == ids[:1]
    assert history_keys(client, offset=-1, max_items=2) == ids[-2:]
    assert history_keys(client, max_items=0) == []
    # execution.py checks len(out) >= max_items only after adding an entry:
    assert history_keys(client, max_items=0, offset=2) == [ids[2]]
    assert history_keys(client, offset=9) == []
    bad = client.get("/history", params={"max_items": "two"})
    assert bad.status_code == 500  # int() raises inside the handler
    assert bad.text == "500 Internal Server Error\n\nServer got itself in trouble"


def test_history_is_capped_like_task_done(tmp_path: Path) -> None:
    assert MAXIMUM_HISTORY_SIZE == 10_000
    with (
        ComfyUIDouble(tmp_path, history_max=3) as double,
        httpx.Client(base_url=double.url) as client,
    ):
        ids = [double.add_prompt() for _ in range(6)]
        # the oldest is popped *before* inserting while len > max: steady state is max + 1
        assert history_keys(client) == ids[-4:]
        ids.append(double.add_prompt())
        assert history_keys(client) == ids[-4:]


def test_post_history_delete_and_clear(double: ComfyUIDouble, client: httpx.Client) -> None:
    ids = [double.add_prompt() for _ in range(3)]
    response = client.post("/history", json={"delete": [ids[1], "unknown"]})
    assert (response.status_code, response.content) == (200, b"")
    assert history_keys(client) == [ids[0], ids[2]]
    assert client.post("/history", json={"clear": False}).status_code == 200
    assert history_keys(client) == [ids[0], ids[2]]
    assert client.post("/api/history", json={"clear": True}).status_code == 200
    assert history_keys(client) == []
    assert client.post("/history", content=b"not json").status_code == 500
    ids = [double.add_prompt() for _ in range(2)]
    double.clear_history()
    assert double.history_ids() == [] and history_keys(client) == []


def test_restart_empties_history_and_temp_but_keeps_outputs(
    double: ComfyUIDouble, client: httpx.Client
) -> None:
    kept = sample_png(2)
    double.add_prompt([("ComfyUI_00001_.png", kept)])
    double.add_prompt([("ComfyUI_temp_abcde_00001_.png", sample_png(3))], type="temp")
    temp_file = double.folder("temp") / "ComfyUI_temp_abcde_00001_.png"
    assert temp_file.exists()
    assert len(history_keys(client)) == 2
    url = double.url

    double.restart()

    assert double.url == url
    assert history_keys(client) == []
    assert double.history_ids() == []
    assert not temp_file.exists() and double.folder("temp").is_dir()
    assert client.get("/view", params={"filename": "ComfyUI_00001_.png"}).content == kept
    temp = client.get("/view", params={"filename": temp_file.name, "type": "temp"})
    assert temp.status_code == 404
    pid = double.add_prompt()
    assert client.get(f"/history/{pid}").json()[pid]["prompt"][0] == 0  # a new PromptServer
    assert double.requests["/history"] == 2  # the counters survive the restart


# --- /view -----------------------------------------------------------------------------------


def test_view_serves_bytes_with_aiohttp_file_headers(
    double: ComfyUIDouble, client: httpx.Client
) -> None:
    data = sample_png(4)
    double.write_file("a b.png", data, subfolder="sub")
    response = client.get("/view", params={"filename": "a b.png", "subfolder": "sub"})
    assert response.status_code == 200
    assert response.content == data
    st = (double.folder() / "sub" / "a b.png").stat()
    assert response.headers["etag"] == f'"{st.st_mtime_ns:x}-{st.st_size:x}"'
    assert response.headers["content-disposition"] == 'filename="a b.png"'
    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-length"] == str(len(data))
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["last-modified"] == email.utils.formatdate(
        math.ceil(st.st_mtime), usegmt=True
    )
    assert "cache-control" not in response.headers
    assert double.view_bytes_sent == len(data)
    assert double.requests["/view"] == 1

    head = client.head("/view", params={"filename": "a b.png", "subfolder": "sub"})
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-length"] == str(len(data))
    assert (
        client.get("/api/view", params={"filename": "a b.png", "subfolder": "sub"}).content == data
    )
    assert double.view_bytes_sent == 2 * len(data)
    assert double.requests["/view"] == 3  # /api/view counts as /view


def test_view_conditional_requests_and_ranges(double: ComfyUIDouble, client: httpx.Client) -> None:
    data = bytes(range(256)) * 4
    double.write_file("blob.png", data)
    params = {"filename": "blob.png"}
    first = client.get("/view", params=params)
    etag = first.headers["etag"]

    def get(**headers: str) -> httpx.Response:
        return client.get("/view", params=params, headers=headers)

    for inm in (etag, f"W/{etag}", "*", f'"other", {etag}'):
        not_modified = get(**{"If-None-Match": inm})
        assert (not_modified.status_code, not_modified.content) == (304, b"")
        assert not_modified.headers["etag"] == etag
    assert get(**{"If-None-Match": '"other"'}).status_code == 200
    assert get(**{"If-Modified-Since": first.headers["last-modified"]}).status_code == 304
    assert get(**{"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}).status_code == 200
    assert get(**{"If-Match": '"other"'}).status_code == 412
    assert get(**{"If-Match": etag}).status_code == 200

    part = get(Range="bytes=0-9")
    assert (part.status_code, part.content) == (206, data[:10])
    assert part.headers["content-range"] == f"bytes 0-9/{len(data)}"
    assert get(Range="bytes=-5").content == data[-5:]
    assert get(Range="bytes=1000-").content == data[1000:]
    assert get(Range=f"bytes=10-{10 * len(data)}").content == data[10:]
    for bad in (f"bytes={len(data)}-", "bytes=0-1,4-5", "bytes=9-2", "items=0-1"):
        unsatisfiable = get(Range=bad)
        assert unsatisfiable.status_code == 416, bad
        assert unsatisfiable.headers["content-range"] == f"bytes */{len(data)}"
    # If-Range is a date for aiohttp: an older one means "send it all"
    assert (
        get(Range="bytes=0-9", **{"If-Range": "Mon, 01 Jan 2001 00:00:00 GMT"}).status_code == 200
    )

    double.write_file("blob.png", bytes(reversed(data)))  # a reused filename, same size
    again = get(**{"If-None-Match": etag})
    assert again.status_code == 200 and again.headers["etag"] != etag
    assert again.content == bytes(reversed(data))


def test_view_rejects_like_comfyui(double: ComfyUIDouble, client: httpx.Client) -> None:
    double.write_file("ok.png", b"ok")
    double.write_file("ok.png", b"sub-ok", subfolder="sub")
    double.write_file("t.png", b"temp-ok", type="temp")
    double.write_file("i.png", b"input-ok", type="input")

    def status(**params: str) -> int:
        return client.get("/view", params=params).status_code

    assert client.get("/view").status_code == 404  # no filename parameter
    assert status(filename="") == 400
    assert status(filename="../secret.png") == 400
    assert status(filename="a/../ok.png") == 400
    assert status(filename="/etc/passwd") == 400
    assert status(filename="ok.png", type="models") == 400
    assert status(filename="ok.png", type="") == 400
    assert status(filename="ok.png", subfolder="../..") == 403
    assert status(filename="ok.png", subfolder="/tmp") == 403
    assert status(filename="ok.png", subfolder="../output2") == 403
    assert status(filename="missing.png") == 404
    assert status(filename="ok.png", subfolder="nope") == 404
    assert status(filename="ok.png", subfolder="") == 200
    assert client.get(
        "/view", params={"filename": "ok.png", "subfolder": "sub/../sub"}
    ).content == (b"sub-ok")
    assert client.get("/view", params={"filename": "sub/ok.png"}).content == b"ok"  # basename
    assert client.get("/view", params={"filename": "t.png", "type": "temp"}).content == b"temp-ok"
    assert client.get("/view", params={"filename": "i.png", "type": "input"}).content == b"input-ok"
    annotated = client.get("/view", params={"filename": "t.png [temp]", "type": "output"})
    assert annotated.content == b"temp-ok"
    assert annotated.headers["content-disposition"] == 'filename="t.png"'
    assert status(filename="ok.png", preview="webp") == 500  # Pillow cannot open b"ok"
    not_allowed = client.post("/view", params={"filename": "ok.png"})
    assert not_allowed.status_code == 405 and not_allowed.headers["allow"] == "GET,HEAD"


def test_view_preview_and_channel_reencode_with_pillow(
    double: ComfyUIDouble, client: httpx.Client
) -> None:
    png = sample_png(5)
    double.write_file("p.png", png)
    params = {"filename": "p.png", "subfolder": "", "type": "output"}
    for preview, fmt in (("webp;50", "WEBP"), ("jpeg", "JPEG"), ("gif", "WEBP")):
        response = client.get("/view", params={**params, "preview": preview})
        assert response.status_code == 200
        assert response.headers["content-type"] == f"image/{fmt.lower()}"
        assert response.headers["content-disposition"] == 'filename="p.png"'
        assert Image.open(io.BytesIO(response.content)).format == fmt
    for channel in ("rgb", "a"):
        response = client.get("/view", params={**params, "channel": channel})
        assert response.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(response.content)).size == (64, 64)
    assert client.get("/view", params={**params, "channel": "rgba"}).content == png


def test_history_may_list_traversal_and_missing_files(
    tmp_path: Path, double: ComfyUIDouble, client: httpx.Client
) -> None:
    pid = double.add_prompt([("../evil.png", b"evil"), ("fine.png", b"fine")])
    images = client.get(f"/history/{pid}").json()[pid]["outputs"]["9"]["images"]
    assert [i["filename"] for i in images] == ["../evil.png", "fine.png"]
    assert [p.name for p in tmp_path.rglob("evil.png")] == []  # never written outside root
    assert client.get("/view", params=images[0]).status_code == 400
    assert client.get("/view", params=images[1]).content == b"fine"

    ghost = double.add_prompt([("ghost.png", b"x")], write_files=False)
    ref = client.get(f"/history/{ghost}").json()[ghost]["outputs"]["9"]["images"][0]
    assert ref == {"filename": "ghost.png", "subfolder": "", "type": "output"}
    assert client.get("/view", params=ref).status_code == 404

    double.delete_file("fine.png")
    assert client.get("/view", params=images[1]).status_code == 404
    with pytest.raises(ValueError):
        double.write_file("../escape.png", b"x")
    with pytest.raises(ValueError):
        double.delete_file("x.png", subfolder="../..")


def test_subfolder_and_temp_outputs(double: ComfyUIDouble, client: httpx.Client) -> None:
    pid = double.add_prompt([("s_00001_.png", b"s")], subfolder="2025-01-01")
    preview = double.add_prompt([("ComfyUI_temp_qwert_00001_.png", b"t")], type="temp")
    body = client.get("/history").json()
    saved = body[pid]["outputs"]["9"]["images"][0]
    assert saved == {"filename": "s_00001_.png", "subfolder": "2025-01-01", "type": "output"}
    assert client.get("/view", params=saved).content == b"s"
    temp = body[preview]["outputs"]["9"]["images"][0]
    assert temp["type"] == "temp"
    assert body[preview]["prompt"][2]["9"]["class_type"] == "PreviewImage"
    assert client.get("/view", params=temp).content == b"t"


def test_extra_output_keys_are_not_images(double: ComfyUIDouble, client: httpx.Client) -> None:
    pid = double.add_prompt([("ComfyUI_00001_.png", sample_png(6))], extra_outputs=True)
    entry = client.get(f"/history/{pid}").json()[pid]
    outputs = entry["outputs"]
    assert outputs["20"] == {"text": ["beautiful scenery nature glass bottle landscape"]}
    (audio,) = outputs["21"]["audio"]
    assert audio["subfolder"] == "audio" and audio["filename"].endswith(".flac")
    assert client.get("/view", params=audio).content.startswith(b"fLaC")
    assert outputs["22"]["animated"] == [True]
    webp = client.get("/view", params=outputs["22"]["images"][0])
    assert webp.headers["content-type"] == "image/webp"
    assert set(entry["meta"]) == {"9", "20", "21", "22"}
    assert sorted(entry["prompt"][4]) == ["20", "21", "22", "9"]


def test_error_and_interrupted_prompts(double: ComfyUIDouble, client: httpx.Client) -> None:
    error = double.add_prompt([("partial.png", b"p")], status="error")
    entry = client.get(f"/history/{error}").json()[error]
    assert (entry["status"]["status_str"], entry["status"]["completed"]) == ("error", False)
    names = [name for name, _ in entry["status"]["messages"]]
    assert names == ["execution_start", "execution_cached", "execution_error"]
    data = entry["status"]["messages"][-1][1]
    assert list(data) == [
        "prompt_id",
        "node_id",
        "node_type",
        "executed",
        "exception_message",
        "exception_type",
        "traceback",
        "current_inputs",
        "current_outputs",
        "timestamp",
    ]
    assert (data["node_id"], data["node_type"]) == ("30", "ImageScaleBy")
    assert "9" in data["executed"] and "31" not in data["executed"]  # 31 needs 30
    assert set(entry["outputs"]) == {"9"}
    assert entry["outputs"]["9"]["images"][0]["filename"] == "partial.png"  # partial outputs

    stopped = double.add_prompt(status="interrupted")
    entry = client.get(f"/history/{stopped}").json()[stopped]
    assert entry["status"]["status_str"] == "error"
    name, data = entry["status"]["messages"][-1]
    assert name == "execution_interrupted"
    assert list(data) == ["prompt_id", "node_id", "node_type", "executed", "timestamp"]
    with pytest.raises(ValueError):
        double.add_prompt(status="queued")


def test_cached_prompt_outputs_depend_on_client_id(
    double: ComfyUIDouble, client: httpx.Client
) -> None:
    images = [("ComfyUI_00001_.png", b"c")]
    cached = double.add_prompt(images, cached=True)
    entry = client.get(f"/history/{cached}").json()[cached]
    assert entry["status"]["messages"][1][1]["nodes"] == list(entry["prompt"][2])
    assert entry["outputs"]["9"]["images"][0]["filename"] == "ComfyUI_00001_.png"
    scripted = double.add_prompt(images, cached=True, no_client_id=True)
    entry = client.get(f"/history/{scripted}").json()[scripted]
    assert "client_id" not in entry["prompt"][3]
    assert (entry["outputs"], entry["meta"]) == ({}, {})  # execute(): UI reused only with a sid


def test_custom_graph_and_workflow_are_stored_verbatim(
    double: ComfyUIDouble, client: httpx.Client
) -> None:
    graph = default_graph("12")
    workflow = {"nodes": [], "links": [], "version": 0.4, "note": "mine"}
    pid = double.add_prompt([("x.png", b"x")], node_id="12", graph=graph, workflow=workflow)
    prompt = client.get(f"/history/{pid}").json()[pid]["prompt"]
    assert prompt[2] == graph
    assert prompt[3]["extra_pnginfo"]["workflow"] == workflow
    assert prompt[4] == ["12"]


# --- faults ----------------------------------------------------------------------------------


def test_fail_fault_with_retry_after_clears_itself(
    double: ComfyUIDouble, client: httpx.Client
) -> None:
    double.add_prompt()
    double.faults.fail("/history", count=2, status=429, retry_after=2.5, body=b"slow down")
    assert double.faults.pending() == [("fail", "/history", 2)]
    first = client.get("/history")
    assert (first.status_code, first.headers["retry-after"], first.content) == (
        429,
        "2.5",
        b"slow down",
    )
    assert client.get("/api/history/whatever").status_code == 429  # prefix, /api ignored
    assert client.get("/history").status_code == 200
    assert double.faults.pending() == []
    double.faults.fail("/view", status=503)
    assert client.get("/history").status_code == 200  # another path: untouched
    assert client.get("/view", params={"filename": "x"}).status_code == 503
    assert client.get("/view", params={"filename": "x"}).status_code == 404


def test_malformed_json_fault(double: ComfyUIDouble, client: httpx.Client) -> None:
    double.faults.malformed_json("/history")
    response = client.get("/history")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    with pytest.raises(json.JSONDecodeError):
        response.json()
    assert client.get("/history").json() == {}


def test_truncate_fault_sends_fewer_bytes_than_content_length(
    double: ComfyUIDouble, client: httpx.Client
) -> None:
    data = os.urandom(200_000)
    double.write_file("big.png", data)
    double.faults.truncate("/view")
    with client.stream("GET", "/view", params={"filename": "big.png"}) as response:
        assert response.status_code == 200
        assert response.headers["content-length"] == str(len(data))
        with pytest.raises(httpx.RemoteProtocolError):
            response.read()
    assert double.view_bytes_sent == len(data) // 2
    assert client.get("/view", params={"filename": "big.png"}).content == data
    assert double.view_bytes_sent == len(data) // 2 + len(data)


def test_reset_mid_body_fault_is_a_connection_error(
    double: ComfyUIDouble, client: httpx.Client
) -> None:
    for _ in range(20):
        double.add_prompt()
    full = client.get("/history").content
    double.faults.reset_mid_body("/history", count=2)
    with client.stream("GET", "/history") as response:
        assert response.status_code == 200
        assert response.headers["content-length"] == str(len(full))
        with pytest.raises(httpx.TransportError):
            response.read()

    async def with_aiohttp() -> None:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ClientError):
                async with session.get(f"{double.url}/history") as r:
                    await r.read()

    asyncio.run(with_aiohttp())
    assert client.get("/history").content == full


def test_delay_fault(double: ComfyUIDouble, client: httpx.Client) -> None:
    double.faults.delay("/system_stats", 0.3)
    started = time.monotonic()
    assert client.get("/system_stats").status_code == 200
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    assert client.get("/system_stats").status_code == 200
    assert time.monotonic() - started < 0.3


# --- origin middleware -----------------------------------------------------------------------


def test_origin_only_middleware(double: ComfyUIDouble, client: httpx.Client) -> None:
    port = double.port

    def status(origin: str, host: str | None = None, method: str = "GET") -> int:
        headers = {"Origin": origin}
        if host is not None:
            headers["Host"] = host
        return client.request(method, "/history", headers=headers).status_code

    assert status("http://evil.example") == 403
    assert status(f"http://localhost:{port}") == 403  # Host is 127.0.0.1:port
    assert status(f"http://127.0.0.1:{port}") == 200
    assert status("http://127.0.0.1") == 200  # no port in Origin: ports ignored
    assert status("http://evil.example", host="localhost") == 403  # loopback by name
    assert status("http://evil.example", host="10.1.2.3:8188") == 200  # only loopback hosts
    assert status("http://evil.example", method="OPTIONS") == 403
    options = client.options("/anything")
    assert (options.status_code, options.content) == (200, b"")

    async def websocket() -> None:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await session.ws_connect(f"{double.url}/ws", origin="http://evil.example")
            assert info.value.status == 403

    asyncio.run(websocket())


def test_cors_header_replaces_origin_check(tmp_path: Path) -> None:
    with (
        ComfyUIDouble(tmp_path, enable_cors_header="*") as double,
        httpx.Client(base_url=double.url) as client,
    ):
        response = client.get("/history", headers={"Origin": "http://evil.example"})
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == "*"
        assert client.options("/history").headers["access-control-allow-credentials"] == "true"


# --- other routes ----------------------------------------------------------------------------


def test_queue_prompt_system_stats_and_unknown_routes(
    double: ComfyUIDouble, client: httpx.Client
) -> None:
    assert client.get("/queue").json() == {"queue_running": [], "queue_pending": []}
    assert client.get("/prompt").json() == {"exec_info": {"queue_remaining": 0}}
    assert client.get("/api/prompt").json() == {"exec_info": {"queue_remaining": 0}}
    stats = client.get("/system_stats").json()
    assert stats["system"]["comfyui_version"] == COMFYUI_VERSION
    assert stats["devices"][0]["type"] == "cpu"
    assert client.get("/features").json()["supports_preview_metadata"] is True
    missing = client.get("/nope")
    assert (missing.status_code, missing.text) == (404, "404: Not Found")
    not_allowed = client.delete("/history")
    assert (not_allowed.status_code, not_allowed.headers["allow"]) == (405, "GET,HEAD,POST")
    assert client.get("/ws").status_code == 400  # no Upgrade header
    assert client.get("/history/").status_code == 404  # no redirect to /history
    assert client.get("/").status_code == 200
    assert double.requests["/nope"] == 1


# --- websocket -------------------------------------------------------------------------------


async def receive(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    message = await asyncio.wait_for(ws.receive(), 30)
    assert message.type == aiohttp.WSMsgType.TEXT, message
    data: dict[str, Any] = json.loads(message.data)
    return data


def queue_status(remaining: int) -> dict[str, Any]:
    return {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": remaining}}}}


async def nothing_pending(ws: aiohttp.ClientWebSocketResponse) -> None:
    """Every message the server sent before our ping precedes the pong: none must be there."""
    await ws.ping(b"probe")
    message = await asyncio.wait_for(ws.receive(), 30)
    assert (message.type, message.data) == (aiohttp.WSMsgType.PONG, b"probe"), message


def test_ws_other_clients_only_see_status(double: ComfyUIDouble) -> None:
    async def scenario() -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"{double.url}/ws?clientId=watcher") as ws,
        ):
            assert await receive(ws) == {
                "type": "status",
                "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": "watcher"},
            }
            double.add_prompt([("a.png", sample_png(8))], extra_outputs=True)
            double.add_prompt(status="error")
            expected = [queue_status(1), queue_status(1), queue_status(0)] * 2
            assert [await receive(ws) for _ in range(6)] == expected
            # nothing else came: the next message is the broadcast we trigger now
            async with session.post(f"{double.url}/queue", json={"clear": True}) as r:
                assert r.status == 200
            assert await receive(ws) == queue_status(0)
            await ws.send_str(json.dumps({"type": "feature_flags", "data": {"x": True}}))
            assert await receive(ws) == {
                "type": "feature_flags",
                "data": {"supports_preview_metadata": True, "max_upload_size": 104857600},
            }

    asyncio.run(scenario())
    assert double.requests["/ws"] == 1


def test_ws_submitting_client_gets_the_execution(double: ComfyUIDouble) -> None:
    async def scenario() -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"{double.url}/api/ws") as ws,
        ):
            hello = await receive(ws)
            sid = hello["data"]["sid"]
            assert re.fullmatch(r"[0-9a-f]{32}", sid)
            pid = double.add_prompt([("a.png", b"a")], client_id=sid, started_ms=1_000)
            messages = []
            while True:
                message = await receive(ws)
                messages.append(message)
                if message["type"] == "executing" and message["data"]["node"] is None:
                    break
            kinds = [m["type"] for m in messages]
            order = ["4", "6", "7", "5", "3", "8", "9"]  # inputs before their users
            assert kinds == [
                "status",
                "status",
                "execution_start",
                "execution_cached",
                *["executing"] * 5,  # 4 6 7 5 3
                *["progress"] * 20,  # KSampler steps
                "executing",  # 8
                "executing",  # 9
                "executed",
                "execution_success",
                "status",
                "executing",
            ]
            executing = [m["data"]["node"] for m in messages if m["type"] == "executing"]
            assert executing == [*order, None]
            assert messages[2]["data"] == {"prompt_id": pid, "timestamp": 1_000}
            executed = next(m for m in messages if m["type"] == "executed")["data"]
            assert executed == {
                "node": "9",
                "display_node": "9",
                "output": {"images": [{"filename": "a.png", "subfolder": "", "type": "output"}]},
                "prompt_id": pid,
            }
            assert [m["data"] for m in messages if m["type"] == "status"] == [
                queue_status(n)["data"] for n in (1, 1, 0)
            ]

    asyncio.run(scenario())


def test_ws_prompt_without_client_id_broadcasts_progress_and_interrupt(
    double: ComfyUIDouble,
) -> None:
    async def scenario() -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"{double.url}/ws?clientId=bystander", autoping=False) as ws,
        ):
            await receive(ws)
            double.add_prompt(status="interrupted", no_client_id=True)
            kinds = [(await receive(ws))["type"] for _ in range(24)]
            assert kinds == [
                "status",
                "status",
                *["progress"] * 20,
                "execution_interrupted",
                "status",
            ]
            await nothing_pending(ws)

    asyncio.run(scenario())


def test_ws_reused_client_id_replaces_then_loses_the_socket(double: ComfyUIDouble) -> None:
    url = f"{double.url}/ws?clientId=dup"

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            old = await session.ws_connect(url, autoping=False)
            assert (await receive(old))["data"]["sid"] == "dup"
            new = await session.ws_connect(url, autoping=False)
            assert (await receive(new))["data"]["sid"] == "dup"
            double.add_prompt()
            assert [await receive(new) for _ in range(3)] == [queue_status(n) for n in (1, 1, 0)]
            await nothing_pending(old)  # replaced in `sockets`: still open, gets nothing
            assert double.connected_client_ids() == ["dup"]

            await old.close()  # its `finally: sockets.pop("dup")` removes the *new* socket
            wait_for(lambda: "dup" not in double.connected_client_ids(), what="old socket gone")
            async with session.ws_connect(f"{double.url}/ws?clientId=other") as other:
                await receive(other)
                double.add_prompt()
                assert [await receive(other) for _ in range(3)] == [
                    queue_status(n) for n in (1, 1, 0)
                ]
            await nothing_pending(new)  # still open, but unreachable
            assert not new.closed
            await new.close()

    asyncio.run(scenario())


def test_ws_is_dropped_by_a_restart(double: ComfyUIDouble) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(f"{double.url}/ws?clientId=a")
            await receive(ws)
            double.add_prompt()
            await asyncio.to_thread(double.restart)
            queued = [await asyncio.wait_for(ws.receive(), 30) for _ in range(4)]
            assert [m.type for m in queued[:3]] == [aiohttp.WSMsgType.TEXT] * 3
            assert queued[3].type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
            async with session.ws_connect(f"{double.url}/ws?clientId=a") as again:
                assert await receive(again) == {
                    "type": "status",
                    "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": "a"},
                }

    asyncio.run(scenario())


# --- scale -----------------------------------------------------------------------------------


def test_bulk_ten_thousand_prompts_is_fast(tmp_path: Path) -> None:
    with (
        ComfyUIDouble(tmp_path) as double,
        httpx.Client(base_url=double.url, timeout=60) as client,
    ):
        started = time.perf_counter()
        ids = double.add_prompts_bulk(10_000, 3, lambda i: b"image %d" % i)
        bulk_seconds = time.perf_counter() - started
        assert bulk_seconds < 15, f"bulk add took {bulk_seconds:.1f}s"
        assert len(list(double.folder().glob("ComfyUI_*_.png"))) == 30_000

        started = time.perf_counter()
        response = client.get("/history")
        history_seconds = time.perf_counter() - started
        assert history_seconds < 10, f"GET /history took {history_seconds:.1f}s"
        body = response.json()
        assert list(body) == ids
        entry = body[ids[-1]]
        assert list(entry) == ["prompt", "outputs", "status", "meta"]
        images = entry["outputs"]["9"]["images"]
        assert [i["filename"] for i in images] == [
            "ComfyUI_29998_.png",
            "ComfyUI_29999_.png",
            "ComfyUI_30000_.png",
        ]
        assert client.get("/view", params=images[0]).content == b"image 29997"
        assert history_keys(client, max_items=3) == ids[-3:]

        more = double.add_prompts_bulk(5, 1, lambda i: b"more %d" % i)
        assert double.history_ids() == (ids + more)[-(MAXIMUM_HISTORY_SIZE + 1) :]
        assert more[0] in double.history_ids() and ids[0] not in double.history_ids()
        assert double.history_entry(more[0])["outputs"]["9"]["images"][0]["filename"] == (  # type: ignore[index]
            "ComfyUI_30001_.png"
        )


# --- by hand ---------------------------------------------------------------------------------


def test_runs_by_hand_as_a_module(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "tests.doubles.comfyui", "--port", "0"]
    command += ["--root", str(tmp_path), "--prompts", "3", "--images", "2"]
    proc = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        assert match, line + (proc.stderr.read() if proc.poll() is not None and proc.stderr else "")
        with httpx.Client(base_url=match.group(1)) as client:
            history = client.get("/history").json()
            assert len(history) == 3
            image = next(iter(history.values()))["outputs"]["9"]["images"][0]
            png = Image.open(io.BytesIO(client.get("/view", params=image).content))
            assert png.format == "PNG"
            assert json.loads(png.text["prompt"])["9"]["class_type"] == "SaveImage"  # type: ignore[attr-defined]
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
