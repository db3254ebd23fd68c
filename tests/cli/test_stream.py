"""The SSE change stream against a real `gallerysync serve`: live, resume, heartbeat, reset."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from gallerysync.catalog.feed import encode_token
from tests.helpers import ServeProcess, cli_json, run_cli, wait_for, write_image

Event = dict[str, Any]


@contextmanager
def sse(url: str, headers: dict[str, str] | None = None) -> Iterator[queue.Queue[Event]]:
    """Read an SSE stream on a thread; parsed events (and comments) arrive on a queue."""
    events: queue.Queue[Event] = queue.Queue()
    stop = threading.Event()
    response_holder: list[httpx.Response] = []

    def reader() -> None:
        try:
            read()
        except (httpx.HTTPError, OSError) as exc:  # closed by the test, or a real failure
            if not stop.is_set():
                events.put({"error": repr(exc)})

    def read() -> None:
        with httpx.stream("GET", url, headers=headers, timeout=httpx.Timeout(30)) as response:
            response_holder.append(response)
            events.put({"status": response.status_code, "headers": dict(response.headers)})
            event: Event = {}
            for line in response.iter_lines():
                if stop.is_set():
                    return
                if line == "":
                    if event:
                        events.put(event)
                    event = {}
                elif line.startswith(":"):
                    events.put({"comment": line[1:].strip()})
                else:
                    field, _, value = line.partition(":")
                    event[field] = value.lstrip(" ")

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        yield events
    finally:
        stop.set()
        if response_holder:
            response_holder[0].close()


def next_event(events: queue.Queue[Event], kind: str | None = None, timeout: float = 20) -> Event:
    while True:
        event = events.get(timeout=timeout)
        if kind is None or event.get("event") == kind or (kind == "comment" and "comment" in event):
            return event


def changes_until_live(events: queue.Queue[Event]) -> list[Event]:
    seen = []
    while True:
        event = next_event(events)
        if event.get("event") == "up-to-date":
            return seen
        if event.get("event") == "change":
            seen.append(event)


def test_stream_live_resume_heartbeat_and_reset(tmp_path: Path) -> None:
    home, root = tmp_path / "home", tmp_path / "pics"
    for i in range(3):
        write_image(root / f"{i}.jpg", i)
    run_cli(home, "source", "add", "folder", str(root))
    serve = ServeProcess(
        home,
        env={
            "GALLERYSYNC_SETTLE_SECONDS": "0.3",
            "GALLERYSYNC_HEARTBEAT_SECONDS": "0.5",
            "GALLERYSYNC_JOB_WORKERS": "0",
        },
    )
    try:
        serve.wait_healthy()
        wait_for(lambda: (serve.health() or {}).get("startup_scan") == "done", what="scan")
        url = serve.url + "/api/changes/stream"
        with sse(url) as events:
            opened = next_event(events)
            assert opened["status"] == 200
            assert opened["headers"]["content-type"].startswith("text/event-stream")
            assert opened["headers"]["cache-control"] == "no-store"
            assert opened["headers"]["x-accel-buffering"] == "no"
            assert "retry" in next_event(events)
            backlog = changes_until_live(events)
            assets = [json.loads(e["data"]) for e in backlog]
            assert sum(1 for a in assets if a["type"] == "asset") == 3
            ids = [e["id"] for e in backlog]
            assert len(set(ids)) == len(ids)
            assert next_event(events, "comment")["comment"] == "heartbeat"

            write_image(root / "live.png", 50)  # the watcher registers it; the stream wakes
            live = json.loads(next_event(events, "change")["data"])
            assert live["type"] == "asset" and live["data"]["format"] == "PNG"
            assert live["data"]["origins"][0]["path"] == "live.png"
            last_id = ids[-1]

        # Offline while two files arrive; resume from the last id we had processed.
        write_image(root / "gone-1.png", 60)
        write_image(root / "gone-2.png", 61)
        wait_for(lambda: len(cli_json(home, "assets", "list")) == 6, what="two more assets")
        with sse(url, headers={"Last-Event-ID": last_id}) as events:
            missed = [json.loads(e["data"]) for e in changes_until_live(events)]
        paths = {o["path"] for m in missed if m["type"] == "asset" for o in m["data"]["origins"]}
        assert paths == {"live.png", "gone-1.png", "gone-2.png"}
        assert [m["seq"] for m in missed] == sorted({m["seq"] for m in missed})

        foreign = encode_token("another", "catalog", 1)
        with sse(url + f"?since={foreign}") as events:
            assert next_event(events)["status"] == 200
            assert "reason" in json.loads(next_event(events, "reset")["data"])
    finally:
        assert serve.stop() == 0


def test_cli_changes_tails_the_feed(tmp_path: Path) -> None:
    home, root = tmp_path / "home", tmp_path / "pics"
    write_image(root / "a.jpg", 1)
    run_cli(home, "source", "add", "folder", str(root))
    run_cli(home, "sync")
    lines = [json.loads(line) for line in run_cli(home, "changes", "--json").stdout.splitlines()]
    assert [c["type"] for c in lines[:-1] if c["type"] != "sync_run"] == ["user", "source", "asset"]
    run = [c for c in lines[:-1] if c["type"] == "sync_run"][-1]["data"]
    assert run["status"] == "ok" and run["counts"]["added"] == 1 and run["progress"] is None
    resume = lines[-1]["next"]
    write_image(root / "b.jpg", 2)
    run_cli(home, "sync")
    more = run_cli(home, "changes", "--json", "--since", resume).stdout.splitlines()
    more_assets = [json.loads(x) for x in more[:-1] if json.loads(x)["type"] == "asset"]
    assert [x["data"]["origins"][0]["path"] for x in more_assets] == ["b.jpg"]
