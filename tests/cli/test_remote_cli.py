"""The remote-source CLI as a user runs it: `source add comfyui|peer`, `sync`, `download`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.doubles.comfyui import ComfyUIDouble, sample_png
from tests.helpers import ServeProcess, cli_json, run_cli

ENV = {"GALLERYSYNC_RETRY_BASE_SECONDS": "0.02"}


@pytest.fixture
def comfy(tmp_path: Path) -> Iterator[ComfyUIDouble]:
    with ComfyUIDouble(tmp_path / "comfy") as double:
        yield double


def test_add_sync_download_as_a_user(tmp_path: Path, comfy: ComfyUIDouble) -> None:
    home = tmp_path / "home"
    for i in range(30):
        comfy.add_prompt([(f"n_{i:05}_.png", sample_png(i))])
    added = cli_json(home, "source", "add", "comfyui", comfy.url, "--name", "gpu")
    assert added["kind"] == "comfyui" and added["download"] == "auto"
    assert added["url"] == comfy.url
    (listed,) = cli_json(home, "source", "list")
    assert listed["root"] == comfy.url and listed["download"] == "auto"

    (report,) = cli_json(home, "sync", "--metadata-only", env=ENV)
    assert report["source"] == "gpu" and report["status"] == "ok"
    assert report["added"] == 30 and "download" not in report
    fetched = cli_json(home, "download", "--all-pending", "--concurrency", "4", env=ENV)
    assert set(fetched) >= {"downloaded", "skipped", "failed", "failed_ids", "bytes", "seconds"}
    assert fetched["downloaded"] == 30 and fetched["failed"] == 0 and fetched["failed_ids"] == []
    assert fetched["bytes"] == sum(len(sample_png(i)) for i in range(30))

    comfy.add_prompt([("later.png", sample_png(99))])
    (again,) = cli_json(home, "sync", env=ENV)  # smart; phase 2 follows for policy auto
    assert again["added"] == 1 and again["download"]["downloaded"] == 1

    text = run_cli(home, "sync", env=ENV).stdout
    assert "gpu: ok (smart)" in text and "no change in image" in text


def test_max_pages_stops_and_the_next_sync_resumes(tmp_path: Path, comfy: ComfyUIDouble) -> None:
    home = tmp_path / "home"
    comfy.add_prompts_bulk(600, 1, sample_png)
    run_cli(home, "source", "add", "comfyui", comfy.url, "--download", "off")
    (first,) = cli_json(home, "sync", "--full", "--max-pages", "1", env=ENV)
    assert first["status"] == "partial" and first["listed"] == 250
    (rest,) = cli_json(home, "sync", "--full", env=ENV)
    assert rest["status"] == "ok" and rest["listed"] == 350 and rest["added"] == 350


def test_bad_input_gets_clear_errors(tmp_path: Path) -> None:
    home = tmp_path / "home"
    cases = [
        (("source", "add", "comfyui", "gpu-box:8188"), "not an http(s) URL"),
        (("source", "add", "comfyui", "http://u:p@h:1"), "credentials"),
        (("source", "add", "peer", "http://h:1"), "needs --token"),
        (("source", "add", "stash2", "http://h:1"), "unknown source kind 'stash2'"),
        (("source", "add", "comfyui", "http://h:1", "--download", "maybe"), "--download"),
        (("sync", "--since", "yesterday-ish"), "--since wants"),
        (("sync", "--full", "--smart"), "mutually exclusive"),
        (("download",), "--all-pending"),
        (("download", "01a1fdec-c094-72a6-9f2d-c33ae60abd4d"), "no asset with id"),
    ]
    for args, message in cases:
        result = run_cli(home, *args, check=False)
        assert result.returncode != 0, args
        assert message in result.stderr, (args, result.stderr)


def test_api_adds_a_remote_source_without_showing_its_token(tmp_path: Path) -> None:
    server = ServeProcess(tmp_path / "home", env={"GALLERYSYNC_REMOTE_SYNC_SECONDS": "3600"})
    try:
        server.wait_healthy()
        created = httpx.post(
            server.url + "/api/sources",
            json={"kind": "peer", "url": "http://127.0.0.1:9", "token": "gst_secret"},
            timeout=10,
        )
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["kind"] == "peer" and body["url"] == "http://127.0.0.1:9"
        assert "gst_secret" not in created.text
        assert "gst_secret" not in httpx.get(server.url + "/api/sources", timeout=10).text
        missing = httpx.post(server.url + "/api/sources", json={"kind": "comfyui"}, timeout=10)
        assert missing.status_code == 422 and "needs `url`" in missing.text
    finally:
        assert server.stop() == 0
