"""Stash failures: malformed replies, server errors, unsafe file names, sweep guards, and a
`kill -9` between a tag merge's deletion and the re-check of what linked to the merged tag."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from gallerysync.catalog import Catalog, schema
from tests.doubles.stash import StashDouble
from tests.helpers import cli_json, run_cli, wait_for
from tests.sources.remote_support import home_runtime, sync
from tests.sources.stash_support import add_stash, catalog_view, oracle, without_missing

ENV = {"GALLERYSYNC_RETRY_BASE_SECONDS": "0.02"}


def test_a_malformed_reply_fails_the_run_and_applies_nothing(tmp_path: Path) -> None:
    with StashDouble() as stash:
        for i in range(3):
            stash.create("tag", name=f"t{i}")
        rt = home_runtime(tmp_path / "home")
        try:
            source = add_stash(rt, stash)
            stash.faults.append(("malformed", None))
            report = sync(rt, source, "full")
            assert report.status == "failed"
            assert "not JSON" in report.errors[0]
            assert catalog_view(rt, source)["entities"] == {}
            # A node without its id: the message names the field; nothing of the page lands.
            stash.faults.append(
                ("mutate", ("findTags", lambda data: data["r"]["tags"][1].pop("id")))
            )
            report = sync(rt, source, "full")
            assert report.status == "failed"
            assert "findTags.tags[1].id is missing" in report.errors[0], report.errors
            assert catalog_view(rt, source)["entities"] == {}
            assert sync(rt, source, "full").status == "ok"
            assert len(catalog_view(rt, source)["entities"]) == 3
        finally:
            rt.close()


def test_server_errors_are_retried_and_refusals_are_not(tmp_path: Path) -> None:
    with StashDouble() as stash:
        stash.create("image")
        rt = home_runtime(tmp_path / "home")
        try:
            source = add_stash(rt, stash)
            stash.faults += [("status", 502), ("status", 503)]
            report = sync(rt, source, "full")
            assert report.status == "ok" and report.counts["page_retries"] == 2
            assert set(catalog_view(rt, source)["origins"]) == {"image:1"}
            before = stash.graphql_requests
            stash.faults.append(("status", 400))
            report = sync(rt, source, "full")
            assert report.status == "failed" and "HTTP 400" in report.errors[0]
            assert stash.graphql_requests == before  # refused at once: the fault ate the only try
        finally:
            rt.close()


def test_unsafe_file_names_are_refused_and_reported(tmp_path: Path) -> None:
    with StashDouble() as stash:
        stash.create("image", basename="../../etc/passwd.png")
        stash.create("image", basename="ok.png")
        rt = home_runtime(tmp_path / "home")
        try:
            source = add_stash(rt, stash)
            report = sync(rt, source, "full")
            assert report.status == "ok" and report.counts["refused"] == 1
            assert "image:1: unsafe file name '../../etc/passwd.png'" in report.errors
            assert set(catalog_view(rt, source)["origins"]) == {"image:2"}
        finally:
            rt.close()


def test_sweep_guards_keep_what_an_outage_would_delete(tmp_path: Path) -> None:
    with StashDouble() as stash:
        ids = [stash.create("image") for _ in range(6)]
        rt = home_runtime(tmp_path / "home")
        try:
            source = add_stash(rt, stash)
            assert sync(rt, source, "full").status == "ok"
            for i in ids[:4]:  # two thirds gone at once: more than the 50 % guard
                stash.destroy("image", i)
            report = sync(rt, source, "smart")
            assert "would remove 4 of 6" in " ".join(report.errors), report.errors
            assert len(catalog_view(rt, source)["origins"]) == 6
            report = sync(rt, source, "full", force=True)
            assert report.counts["deleted"] == 4
            assert len(catalog_view(rt, source)["origins"]) == 2
            for i in ids[4:]:  # Stash lists no images at all while we hold two
                stash.destroy("image", i)
            report = sync(rt, source, "full", force=True)
            assert "listed nothing" in " ".join(report.errors), report.errors
            assert len(catalog_view(rt, source)["origins"]) == 2
        finally:
            rt.close()


def _image_pending(home: Path) -> bool:
    catalog = Catalog.open(f"sqlite:///{home / 'catalog.sqlite3'}")
    try:
        with catalog.read() as conn:
            row = conn.execute(
                select(schema.sync_state.c.cursor).where(schema.sync_state.c.entity_type == "image")
            ).first()
    finally:
        catalog.close()
    return row is not None and bool(json.loads(row.cursor or "{}").get("pending"))


def test_kill_between_a_merge_and_the_recheck_then_rerun(tmp_path: Path) -> None:
    """The merged-away tag is deleted (and noted as pending for the later types) in one
    transaction; a sync killed right after must still re-fetch the images that linked to it."""
    with StashDouble() as stash:
        red, blue = stash.create("tag", name="red"), stash.create("tag", name="blue")
        gallery = stash.create("gallery", title="g", links={"tags": [red]})
        for i in range(30):
            stash.create("image", links={"tags": [blue if i % 2 else red], "galleries": [gallery]})
        home = tmp_path / "home"
        run_cli(
            home, "source", "add", "stash", stash.url, "--api-key", "stash-key", "--download", "off"
        )
        (first,) = cli_json(home, "sync", "--full", env=ENV)
        assert first["status"] == "ok"
        stash.tick(1)
        stash.merge_tags([blue], red)
        stash.delay = 0.3
        proc = subprocess.Popen(
            [sys.executable, "-m", "gallerysync", "--home", str(home), "sync", "--json"],
            env={**os.environ, **ENV},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(lambda: _image_pending(home), timeout=60, what="the merge noted as pending")
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        stash.delay = 0
        (again,) = cli_json(home, "sync", env=ENV)
        assert again["status"] == "ok", again
        rt = home_runtime(home)
        try:
            (source,) = rt.sources_named([])
            assert without_missing(catalog_view(rt, source)) == oracle(stash)
            assert not _image_pending(home)
        finally:
            rt.close()
