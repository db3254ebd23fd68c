"""One harness per registered remote source kind: a real server with known content.

The conformance suite fails for a registered kind without a harness here, so a new connector
(built in or a plug-in) cannot skip the shared checks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from gallerysync.blobs.hashing import hash_bytes
from tests.doubles.comfyui import ComfyUIDouble, sample_png
from tests.helpers import ServeProcess, cli_json, run_cli, wait_for, write_image


@dataclass
class Harness:
    options: dict[str, Any]  # what `SourceKind.make_options` returned, as stored
    expected: dict[str, str]  # remote id → BLAKE3 of its bytes
    validators: bool  # the server answers 304 to the ETag it gave
    break_next_listing: Callable[[], None] | None  # make the next listing reply malformed
    add_item: Callable[[], None]  # one more item appears at the source
    repeats: bool = False  # a change feed lists an item once per change (the latest state)


@contextlib.contextmanager
def comfyui_harness(tmp_path: Path) -> Iterator[Harness]:
    from gallerysync.sources.comfyui import KIND

    with ComfyUIDouble(tmp_path / "comfy") as comfy:
        expected: dict[str, str] = {}
        for i in range(23):
            data = sample_png(i)
            comfy.add_prompt([(f"c_{i:05}_.png", data)])
            expected[f"output/c_{i:05}_.png"] = hash_bytes(data)

        def add_item() -> None:
            comfy.add_prompt([("extra.png", sample_png(999))])

        yield Harness(
            options=KIND.make_options(comfy.url, {}),
            expected=expected,
            validators=True,
            break_next_listing=lambda: comfy.faults.malformed_json("/history"),
            add_item=add_item,
        )


@contextlib.contextmanager
def peer_harness(tmp_path: Path) -> Iterator[Harness]:
    from gallerysync.sources.peer import KIND

    home, pics = tmp_path / "peer", tmp_path / "pics"
    files = {f"p{i}.png": write_image(pics / f"p{i}.png", i) for i in range(23)}
    run_cli(home, "source", "add", "folder", str(pics))
    run_cli(home, "sync")
    token = cli_json(home, "token", "create", "--user", "admin")["token"]
    assets = cli_json(home, "assets", "list", "--limit", "100")
    by_hash = {hash_bytes(data): data for data in files.values()}
    expected = {a["id"]: a["hash"] for a in assets if a["hash"] in by_hash}
    assert len(expected) == len(files)
    server = ServeProcess(home, env={"GALLERYSYNC_AUTH": "on"})
    try:
        server.wait_healthy()

        def settled() -> bool:  # thumbnails made: the peer's feed is quiet until we act
            page = httpx.get(
                server.url + "/api/assets?limit=100",
                headers={"Authorization": f"Bearer {token}"},
                timeout=10,
            ).json()["assets"]
            return len(page) == len(files) and all(a["thumbnail"] for a in page)

        wait_for(settled, 30, "the peer's thumbnails")

        def add_item() -> None:
            write_image(pics / "extra.png", 999)
            run_cli(home, "sync")

        yield Harness(
            options=KIND.make_options(server.url, {"token": token}),
            expected=expected,
            validators=True,
            break_next_listing=None,  # a real gallerysync: its replies are well-formed
            add_item=add_item,
            repeats=True,
        )
    finally:
        server.stop()


@contextlib.contextmanager
def stash_harness(tmp_path: Path) -> Iterator[Harness]:
    from gallerysync.sources.stash import KIND
    from tests.doubles.stash import StashDouble

    with StashDouble() as stash:
        ids = [stash.create("image", title=f"s{i}") for i in range(23)]
        expected = {f"image:{i}": hash_bytes(stash.rows["image"][i].data) for i in ids}
        yield Harness(
            options=KIND.make_options(stash.url, {"api_key": stash.api_key}),
            expected=expected,
            validators=False,  # Go's http.ServeContent sends Last-Modified, no ETag
            break_next_listing=lambda: stash.faults.append(("malformed", None)),
            add_item=lambda: stash.create("image", title="extra"),
        )


HARNESSES: dict[str, Callable[[Path], contextlib.AbstractContextManager[Harness]]] = {
    "comfyui": comfyui_harness,
    "peer": peer_harness,
    "stash": stash_harness,
}
