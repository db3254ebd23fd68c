"""Users and tokens from the CLI, and user isolation on a real `gallerysync serve` stream."""

from __future__ import annotations

import json
import queue
from pathlib import Path

import httpx
import pytest

from gallerysync.errors import ConfigError
from gallerysync.runtime import check_bind_host
from tests.cli.test_stream import Event, next_event, sse
from tests.helpers import ServeProcess, cli_json, run_cli, wait_for, write_image


def test_user_and_token_commands(tmp_path: Path) -> None:
    home = tmp_path / "home"
    alice = cli_json(home, "user", "add", "alice", "--json")
    assert alice["name"] == "alice"
    again = run_cli(home, "user", "add", "alice", check=False)
    assert again.returncode == 1 and "exists" in again.stderr
    assert run_cli(home, "user", "add", "  ", check=False).returncode == 2
    assert [u["name"] for u in cli_json(home, "user", "list", "--json")] == ["admin", "alice"]

    made = cli_json(home, "token", "create", "--user", "alice", "--label", "laptop", "--json")
    assert made["token"].startswith("gst_") and len(made["token"]) > 40
    plain = run_cli(home, "token", "create", "--user", "alice")
    assert plain.stdout.strip().startswith("gst_")  # the secret alone on stdout, for scripts
    listed = cli_json(home, "token", "list", "--user", "alice", "--json")
    assert [t["label"] for t in listed] == ["laptop", ""]
    assert made["token"] not in json.dumps(listed) and listed[0]["prefix"] == made["token"][:10]
    catalog_bytes = (home / "catalog.sqlite3").read_bytes()
    assert made["token"].encode() not in catalog_bytes  # stored hashed, never in clear
    assert run_cli(home, "token", "create", "--user", "nobody", check=False).returncode == 1
    run_cli(home, "token", "revoke", made["id"])
    assert len(cli_json(home, "token", "list", "--json")) == 1
    assert run_cli(home, "token", "revoke", made["id"], check=False).returncode == 1


def test_non_loopback_bind_needs_auth() -> None:
    with pytest.raises(ConfigError, match="GALLERYSYNC_AUTH=on"):
        check_bind_host("0.0.0.0", auth=False)
    check_bind_host("0.0.0.0", auth=True)
    check_bind_host("127.0.0.1", auth=False)


def _ids_in(event: Event) -> str:
    return event.get("data", "")


def test_stream_isolates_users_on_a_real_server(tmp_path: Path) -> None:
    home = tmp_path / "home"
    tokens: dict[str, str] = {}
    for seed, name in enumerate(("alice", "bob")):
        run_cli(home, "user", "add", name)
        write_image(tmp_path / name / f"{name}-0.png", seed)
        run_cli(home, "source", "add", "folder", str(tmp_path / name), "--user", name)
        tokens[name] = cli_json(home, "token", "create", "--user", name, "--json")["token"]
    run_cli(home, "sync")
    serve = ServeProcess(home, env={"GALLERYSYNC_AUTH": "on", "GALLERYSYNC_SETTLE_SECONDS": "0.2"})
    try:
        serve.wait_healthy()
        assert httpx.get(serve.url + "/api/changes/stream").status_code == 401
        bob_ids = {
            a["id"]
            for a in httpx.get(
                serve.url + "/api/assets", headers={"Authorization": f"Bearer {tokens['bob']}"}
            ).json()["assets"]
        }
        bob_source = httpx.get(
            serve.url + "/api/sources", headers={"Authorization": f"Bearer {tokens['bob']}"}
        ).json()["sources"][0]["id"]
        assert len(bob_ids) == 1
        # List pages are cached per caller: the same query never serves one user's page to
        # another, nor to a request without (or with wrong) credentials.
        for _ in range(2):
            for name in ("bob", "alice"):
                page = httpx.get(
                    serve.url + "/api/assets",
                    headers={"Authorization": f"Bearer {tokens[name]}"},
                ).json()["assets"]
                assert [a["origins"][0]["path"] for a in page] == [f"{name}-0.png"]
            assert httpx.get(serve.url + "/api/assets").status_code == 401
            bad = {"Authorization": "Bearer gst_forged"}
            assert httpx.get(serve.url + "/api/assets", headers=bad).status_code == 401

        headers = {"Authorization": f"Bearer {tokens['alice']}"}
        with sse(serve.url + "/api/changes/stream", headers) as events:
            assert next_event(events)["status"] == 200
            backlog: list[Event] = []
            hidden = 0
            while (event := next_event(events)).get("event") != "up-to-date":
                if event.get("event") == "change":
                    backlog.append(event)
                elif "id" in event and "event" not in event:
                    hidden += 1
            assert hidden > 0  # bob's entries moved alice's cursor...
            for seen in backlog:  # ...but nothing of bob's ever reached her
                assert "bob" not in _ids_in(seen) and bob_source not in _ids_in(seen)
                assert not any(i in _ids_in(seen) for i in bob_ids)
            assert {
                json.loads(e["data"])["data"]["name"] for e in backlog if '"source"' in e["data"]
            } == {"alice"}

            # Live: bob's new file only moves the cursor; alice's arrives in full.
            write_image(tmp_path / "bob" / "bob-1.png", 501)
            last_hidden = _next_bare_id(events)
            write_image(tmp_path / "alice" / "alice-1.png", 502)
            change = next_event(events, "change")
            while json.loads(change["data"])["type"] != "asset":
                change = next_event(events, "change")
            entry = json.loads(change["data"])
            assert entry["data"]["origins"][0]["path"] == "alice-1.png"
            assert change["id"] != last_hidden
        wait_for(
            lambda: (
                len(
                    httpx.get(
                        serve.url + "/api/assets",
                        headers={"Authorization": f"Bearer {tokens['bob']}"},
                    ).json()["assets"]
                )
                == 2
            ),
            what="bob's new asset",
        )
    finally:
        assert serve.stop() == 0, serve.log.read_text()


def _next_bare_id(events: queue.Queue[Event]) -> str:
    """Wait for an `id:`-only event (another user's change) and return its id."""
    while True:
        event = next_event(events)
        assert event.get("event") != "change" or "bob" not in event.get("data", ""), event
        if "id" in event and "event" not in event:
            return str(event["id"])


def test_open_stream_ends_on_revocation_and_on_shutdown(tmp_path: Path) -> None:
    home = tmp_path / "home"
    run_cli(home, "user", "add", "erin")
    made = cli_json(home, "token", "create", "--user", "erin", "--json")
    serve = ServeProcess(
        home, env={"GALLERYSYNC_AUTH": "on", "GALLERYSYNC_HEARTBEAT_SECONDS": "0.3"}
    )
    try:
        serve.wait_healthy()
        url = serve.url + "/api/changes/stream"
        headers = {"Authorization": f"Bearer {made['token']}"}
        with httpx.stream("GET", url, headers=headers, timeout=30) as response:
            assert response.status_code == 200
            lines = response.iter_lines()
            assert any(line == "event: up-to-date" for line in lines)
            run_cli(home, "token", "revoke", made["id"])
            rest = list(lines)  # returns only because the server ends the stream
        assert "event: change" not in rest
        assert httpx.get(url, headers=headers).status_code == 401

        # Shutdown with a stream open: it ends, and serve exits 0 without waiting for it.
        second = cli_json(home, "token", "create", "--user", "erin", "--json")["token"]
        headers = {"Authorization": f"Bearer {second}"}
        with httpx.stream("GET", url, headers=headers, timeout=30) as response:
            lines = response.iter_lines()
            assert any(line == "event: up-to-date" for line in lines)
            assert serve.stop(timeout=10) == 0, serve.log.read_text()
            list(lines)
    finally:
        if serve.proc.poll() is None:
            serve.kill()
