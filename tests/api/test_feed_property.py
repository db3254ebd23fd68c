"""A seeded, randomised property test of the change feed, over real HTTP, on both databases.

Several writer threads add, change and delete entities of several users — straight through the
catalog and through the HTTP API — while several clients per user follow the feed: SSE clients
(`/api/changes/stream`) and page clients (`/api/changes`), each disconnecting at random points
(mid-backlog, while live, after a heartbeat) and resuming with `Last-Event-ID` or `?since=`
(SSE) or `since=next` (pages), as real clients do.

What a pass proves, for the seed that ran (`GALLERYSYNC_PROPERTY_SEED` overrides it; every
failure message names it, so a failure can be replayed):

- every SSE client received every feed position `1..head` exactly once and in order, across
  all its reconnects — visible entries as `change` events, other users' as `id:`-only events —
  so a stream that skips, repeats or reorders one entry fails at that entry;
- `up-to-date` names exactly the last position delivered (resuming from it skips nothing);
- page clients: consecutive pages chain (`covers[0]` == the previous `covers[1]` == `next`),
  the chain covers `(0, head]`, and every entry lies inside its page's range;
- every client's visible entries are exactly the change-log entries scoped to its user, and no
  client ever received an entity of another user (checked per entry against the owner the
  writer recorded, and again at the end for everything received);
- at the end, each client's replica (built only from entries: `upsert` sets `data`, `delete`
  removes the key) equals the catalog's current state for its user — its assets
  (`asset_summaries`), sources, sync runs and the user itself — so every deletion reached it as
  a tombstone and every entry carried current state.

Pauses between writes and between polls only interleave the threads; every wait is for an
observable condition (the final head reached, a heartbeat, a join).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import select

from gallerysync.api.app import create_app
from gallerysync.blobs.local import LocalBlobStore
from gallerysync.catalog import Catalog, schema
from gallerysync.catalog.assets import (
    asset_summaries,
    insert_assets,
    insert_origins,
    mark_origins_missing,
    origins_of_assets,
    refresh_asset_status,
    set_trashed,
)
from gallerysync.catalog.feed import decode_token
from gallerysync.catalog.runs import finish_run, record_progress, run_states, start_run
from gallerysync.catalog.sources import (
    create_source,
    get_source,
    remove_source,
    set_source_status,
)
from gallerysync.catalog.users import add_user, create_token
from gallerysync.domain import OriginStatus, SourceStatus, new_id, now_ms
from gallerysync.events.hub import ChangeHub
from tests.helpers import wait_for

SEED = int(os.environ.get("GALLERYSYNC_PROPERTY_SEED", "20261121"))
USERS = ("alice", "bob", "carol")  # plus the catalog's own `admin`: four users in all
WRITERS = 3
OPS_PER_WRITER = 60
HEARTBEAT_SECONDS = 0.5  # bounds how long a live, idle stream takes to notice the end
DEADLINE_SECONDS = 90.0  # a hang fails with the seed instead of waiting for pytest's timeout

Key = tuple[str, str]  # (entity type, entity id)


class World:
    """What the threads share: users, owners of every entity ever made, committed assets."""

    def __init__(self, catalog: Catalog, seed: int) -> None:
        self.catalog = catalog
        self.seed = seed
        self.label = f"[seed={seed} db={catalog.dialect}]"
        self.url = ""
        self.user_ids: dict[str, str] = {}  # name -> id
        self.tokens: dict[str, str] = {}  # user id -> bearer secret
        self.base_sources: dict[str, str] = {}  # user id -> a source that is never removed
        self.owners: dict[Key, str] = {}
        self.assets: dict[str, list[str]] = {}  # user id -> committed asset ids
        self.lock = threading.Lock()
        self.final_head: int | None = None  # set once every writer has finished
        self.writers_done = threading.Event()
        self.abort = threading.Event()
        self.errors: list[str] = []
        self.deadline = time.monotonic() + DEADLINE_SECONDS
        self._first_seen = 0

    def check(self, ok: object, who: str, message: str) -> None:
        if not ok:
            raise AssertionError(f"{self.label} {who}: {message}")

    def own(self, key: Key, user_id: str) -> None:
        with self.lock:
            self.owners[key] = user_id

    def owner(self, key: Key) -> str | None:
        with self.lock:
            return self.owners.get(key)

    def committed_asset(self, user_id: str, asset_id: str) -> None:
        with self.lock:
            self.assets[user_id].append(asset_id)

    def some_asset(self, rng: random.Random, user_id: str) -> str | None:
        with self.lock:
            return rng.choice(self.assets[user_id]) if self.assets[user_id] else None

    def first_seen(self) -> int:
        """Distinct origin times: `asset_summaries` orders origins by `first_seen_at`, and a
        tie would leave their order to the database (not what this test is about)."""
        with self.lock:
            self._first_seen = max(self._first_seen + 1, now_ms())
            return self._first_seen

    def over(self) -> bool:
        return self.abort.is_set() or time.monotonic() > self.deadline

    def bearer(self, user_id: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user_id]}"}


def guarded(world: World, name: str, target: Callable[[], None]) -> threading.Thread:
    """A thread whose failure is recorded (with the seed) and stops everyone else."""

    def run() -> None:
        try:
            target()
        except BaseException:
            world.errors.append(f"{world.label} {name} failed:\n{traceback.format_exc()}")
            world.abort.set()

    return threading.Thread(target=run, name=name, daemon=True)


# --- the server -----------------------------------------------------------------------------


@contextmanager
def served(catalog: Catalog, blobs_dir: Path) -> Iterator[str]:
    """The real app under uvicorn on a loopback port, on its own thread and event loop, with
    commits waking streams the way `serve` wires them (`add_commit_listener(hub.publish)`)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    loop = asyncio.new_event_loop()
    hub = ChangeHub(loop, catalog.head())
    app = create_app(
        catalog,
        hub,
        blobs=LocalBlobStore(blobs_dir),
        heartbeat_seconds=HEARTBEAT_SECONDS,
        auth_required=True,
    )
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan="off",
        access_log=False,
        ws="none",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(server.serve(sockets=[sock]))
        except BaseException as exc:
            failure.append(exc)
        finally:
            loop.close()

    catalog.add_commit_listener(hub.publish)
    thread = threading.Thread(target=run, name="uvicorn", daemon=True)
    thread.start()
    try:

        def healthy() -> bool:
            assert not failure, failure
            try:
                return httpx.get(url + "/healthz", timeout=2).json()["status"] == "ok"
            except httpx.TransportError:
                return False

        wait_for(healthy, 20, "the test server's /healthz")
        yield url
    finally:
        catalog.remove_commit_listener(hub.publish)
        server.should_exit = True
        thread.join(20)
        sock.close()
        assert not thread.is_alive(), "uvicorn did not stop"
        assert not failure, failure


# --- writers --------------------------------------------------------------------------------


class Writer:
    """Random operations on random users' entities, some through the HTTP API. Each writer
    owns the extra sources it makes (only it adds to or removes them), so its choices never
    race another writer's: the interleaving of their transactions is what is random."""

    def __init__(self, world: World, index: int) -> None:
        self.world = world
        self.index = index
        self.rng = random.Random(f"{world.seed}/writer/{index}")  # replaced per operation
        self.extra: dict[str, str] = {}  # user id -> this writer's extra source
        self.made = 0
        self.ops: dict[str, int] = {}

    def run(self) -> None:
        operations: list[tuple[Callable[[str, httpx.Client], None], int]] = [
            (self.add_asset, 26),
            (self.add_origin, 8),
            (self.origin_missing, 6),
            (self.trash, 18),
            (self.source_cycle, 12),
            (self.sync_run, 10),
            (self.source_status, 6),
            (self.multi, 10),
        ]
        functions, weights = zip(*operations, strict=True)
        users = list(self.world.user_ids.values())
        with httpx.Client(base_url=self.world.url, timeout=20) as http:
            for n in range(OPS_PER_WRITER):
                if self.world.over():
                    return
                # One generator per operation: the seed fixes each writer's sequence of
                # operations and users whatever the interleaving did to earlier ones.
                self.rng = random.Random(f"{self.world.seed}/writer/{self.index}/{n}")
                operation = self.rng.choices(functions, weights)[0]
                self.ops[operation.__name__] = self.ops.get(operation.__name__, 0) + 1
                operation(self.rng.choice(users), http)
                time.sleep(self.rng.random() * 0.006)  # interleaving only, not a wait

    def _name(self, what: str) -> str:
        self.made += 1
        return f"w{self.index}-{what}-{self.made}"

    def _source_for(self, user_id: str) -> str:
        extra = self.extra.get(user_id)
        return extra if extra and self.rng.random() < 0.5 else self.world.base_sources[user_id]

    def _new_asset(self, user_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        asset_id = new_id()
        self.world.own(("asset", asset_id), user_id)
        size = self.rng.randint(100, 10**6)
        asset = {
            "id": asset_id,
            "owner_id": user_id,
            "hash": f"{self.rng.getrandbits(256):064x}",
            "kind": "image",
            "format": "PNG",
            "mime": "image/png",
            "width": self.rng.randint(1, 4000),
            "height": self.rng.randint(1, 4000),
            "size": size,
        }
        return asset, self._origin(user_id, asset_id, size)

    def _origin(self, user_id: str, asset_id: str, size: int) -> dict[str, Any]:
        path = self._name("file") + ".png"
        return {
            "id": new_id(),
            "source_id": self._source_for(user_id),
            "remote_id": path,
            "asset_id": asset_id,
            "path": path,
            "size": size,
            "mtime_ns": self.rng.getrandbits(60),
            "first_seen_at": self.world.first_seen(),
        }

    def add_asset(self, user_id: str, http: httpx.Client) -> None:
        asset, origin = self._new_asset(user_id)
        with self.world.catalog.write() as tx:
            insert_assets(tx, [asset])
            insert_origins(tx, user_id, [origin])
        self.world.committed_asset(user_id, asset["id"])

    def add_origin(self, user_id: str, http: httpx.Client) -> None:
        """Same bytes found at another path: the asset gains an origin (and a version)."""
        asset_id = self.world.some_asset(self.rng, user_id)
        if asset_id is None:
            return self.add_asset(user_id, http)
        with self.world.catalog.write() as tx:
            insert_origins(tx, user_id, [self._origin(user_id, asset_id, 1)])
            refresh_asset_status(tx, [asset_id])

    def origin_missing(self, user_id: str, http: httpx.Client) -> None:
        asset_id = self.world.some_asset(self.rng, user_id)
        if asset_id is None:
            return
        with self.world.catalog.write() as tx:
            origins = origins_of_assets(tx.conn, [asset_id]).get(asset_id, [])
            present = [o for o in origins if o.status == OriginStatus.PRESENT]
            if present:
                refresh_asset_status(
                    tx, mark_origins_missing(tx, user_id, [self.rng.choice(present)])
                )

    def trash(self, user_id: str, http: httpx.Client) -> None:
        """Trash or restore, half of the time through the API (after a stranger's 404)."""
        asset_id = self.world.some_asset(self.rng, user_id)
        if asset_id is None:
            return
        trashed = self.rng.random() < 0.6
        if self.rng.random() < 0.5:
            with self.world.catalog.write() as tx:
                done = set_trashed(tx, asset_id, user_id, trashed)
            self.world.check(done, "writer", f"set_trashed({asset_id}) found nothing")
            return
        method, path = ("DELETE", "") if trashed else ("POST", "/restore")
        stranger = self.rng.choice([u for u in self.world.tokens if u != user_id])
        response = http.request(
            method, f"/api/assets/{asset_id}{path}", headers=self.world.bearer(stranger)
        )
        self.world.check(response.status_code == 404, "writer", f"stranger got {response}")
        response = http.request(
            method, f"/api/assets/{asset_id}{path}", headers=self.world.bearer(user_id)
        )
        self.world.check(response.status_code == 200, "writer", response.text)
        self.world.check(response.json()["id"] == asset_id, "writer", response.text)

    def source_cycle(self, user_id: str, http: httpx.Client) -> None:
        """Add an extra source, or remove it (a `delete` entry; its assets change)."""
        source_id = self.extra.pop(user_id, None)
        if source_id is None:
            source_id = new_id()
            self.world.own(("source", source_id), user_id)
            with self.world.catalog.write() as tx:
                create_source(
                    tx,
                    source_id=source_id,
                    kind="folder",
                    name=self._name("source"),
                    owner_id=user_id,
                    options={},
                )
            self.extra[user_id] = source_id
            if self.rng.random() < 0.6:  # a new source is usually synced at once
                self._run(user_id, source_id)
        elif self.rng.random() < 0.5:
            with self.world.catalog.write() as tx:
                remove_source(tx, get_source(tx.conn, source_id))
        else:
            stranger = self.rng.choice([u for u in self.world.tokens if u != user_id])
            response = http.delete(f"/api/sources/{source_id}", headers=self.world.bearer(stranger))
            self.world.check(response.status_code == 404, "writer", f"stranger got {response}")
            response = http.delete(f"/api/sources/{source_id}", headers=self.world.bearer(user_id))
            self.world.check(response.status_code == 200, "writer", response.text)
            self.world.check(response.json()["removed"] == source_id, "writer", response.text)

    def sync_run(self, user_id: str, http: httpx.Client) -> None:
        self._run(user_id, self._source_for(user_id))

    def _run(self, user_id: str, source_id: str) -> None:
        """A sync run's lifecycle (started, progress, finished — or left running)."""
        run_id = start_run(self.world.catalog, source_id, self.rng.choice(["smart", "full"]))
        self.world.own(("sync_run", run_id), user_id)  # the id is made inside start_run
        total = self.rng.randint(1, 50)
        for done in sorted(self.rng.sample(range(total + 1), self.rng.randint(0, 2))):
            with self.world.catalog.write() as tx:
                record_progress(tx, get_source(tx.conn, source_id), run_id, done, total)
        if self.rng.random() < 0.8:
            status = self.rng.choice(["ok", "ok", "failed", "cancelled"])
            error = "boom" if status == "failed" else None
            finish_run(self.world.catalog, run_id, status, {"added": total}, error)

    def source_status(self, user_id: str, http: httpx.Client) -> None:
        status = self.rng.choice([SourceStatus.OK, SourceStatus.OFFLINE, SourceStatus.ERROR])
        with self.world.catalog.write() as tx:
            source = get_source(tx.conn, self.world.base_sources[user_id])
            set_source_status(tx, source, status, self._name("detail"))

    def multi(self, user_id: str, http: httpx.Client) -> None:
        """One transaction over several users' entities: one contiguous block of entries."""
        users = list(self.world.user_ids.values())
        made = [(u, *self._new_asset(u)) for u in self.rng.sample(users, self.rng.randint(1, 3))]
        toggles = [(u, self.world.some_asset(self.rng, u)) for u in self.rng.sample(users, 2)]
        with self.world.catalog.write() as tx:
            for owner, asset, origin in made:
                insert_assets(tx, [asset])
                insert_origins(tx, owner, [origin])
            for owner, asset_id in toggles:
                if asset_id is not None:
                    set_trashed(tx, asset_id, owner, self.rng.random() < 0.5)
            source = get_source(tx.conn, self.world.base_sources[self.rng.choice(users)])
            set_source_status(tx, source, SourceStatus.OK, self._name("multi"))
        for owner, asset, _origin in made:
            self.world.committed_asset(owner, asset["id"])


# --- clients --------------------------------------------------------------------------------


@dataclass
class Replica:
    """One client's view: entity states from entries, and every position it was shown."""

    world: World
    name: str
    user_id: str
    state: dict[Key, Any] = field(default_factory=dict)
    received: set[Key] = field(default_factory=set)
    visible: list[int] = field(default_factory=list)  # seqs of the entries it was shown
    connections: int = 0

    def apply(self, entry: dict[str, Any], seq: int) -> None:
        check = self.world.check
        check(entry["seq"] == seq, self.name, f"entry {entry} is not at position {seq}")
        check(not self.visible or seq > self.visible[-1], self.name, f"{seq} after {self.visible}")
        key = (entry["type"], entry["id"])
        owner = self.world.owner(key)  # None only for a run whose start has not returned yet
        check(owner in (None, self.user_id), self.name, f"got {key}, an entity of {owner}")
        self.received.add(key)
        self.visible.append(seq)
        if entry["op"] == "delete":
            check(entry["data"] is None, self.name, f"a delete with data: {entry}")
            self.state.pop(key, None)
        else:
            check(entry["op"] == "upsert", self.name, f"unknown op: {entry}")
            check(entry["data"]["id"] == entry["id"], self.name, f"data of another id: {entry}")
            self.state[key] = entry["data"]

    def seq(self, token: str) -> int:
        return decode_token(token, self.world.catalog)

    def finished(self, position: int) -> bool:
        final = self.world.final_head
        return final is not None and position >= final


def sse_events(lines: Iterator[str]) -> Iterator[dict[str, str]]:
    """Parse SSE framing: one dict of fields per event; a comment as `{":": text}`."""
    event: dict[str, str] = {}
    for line in lines:
        if line == "":
            if event:
                yield event
            event = {}
        elif line.startswith(":"):
            yield {":": line[1:].strip()}
        else:
            name, _, value = line.partition(":")
            event[name] = value.removeprefix(" ")


class SseClient(Replica):
    """Follows `/api/changes/stream`, hanging up after a random number of events (or on a
    heartbeat) and resuming from the last id it processed — as EventSource does."""

    def __init__(self, world: World, name: str, user_id: str, rng: random.Random) -> None:
        super().__init__(world, name, user_id)
        self.rng = rng
        self.position = 0  # the last feed position received, visible or not
        self.heartbeats = 0
        self.events = 0

    def run(self) -> None:
        token: str | None = None
        with httpx.Client(
            base_url=self.world.url, headers=self.world.bearer(self.user_id), timeout=20
        ) as http:
            while not self.finished(self.position) and not self.world.over():
                headers: dict[str, str] = {}
                params: dict[str, str] = {}
                if token is not None and self.rng.random() < 0.7:
                    headers["Last-Event-ID"] = token
                elif token is not None:
                    params["since"] = token
                budget = self.rng.choice([self.rng.randint(1, 8), self.rng.randint(8, 120)])
                with http.stream(
                    "GET", "/api/changes/stream", headers=headers, params=params
                ) as response:
                    token = self._read(response, budget, token)
                self.world.writers_done.wait(self.rng.random() * 0.01)  # pause, not a wait

    def _read(self, response: httpx.Response, budget: int, token: str | None) -> str | None:
        check = self.world.check
        self.connections += 1
        check(response.status_code == 200, self.name, f"stream answered {response.status_code}")
        check(response.headers["content-type"].startswith("text/event-stream"), self.name, "type")
        events = sse_events(response.iter_lines())
        first = next(events)
        check(3000 <= int(first.get("retry", 0)) <= 5000, self.name, f"first event {first}")
        for event in events:
            if ":" in event:
                self.heartbeats += 1
                if self.rng.random() < 0.3:
                    return token  # hang up while live
            elif event.get("event") == "up-to-date":
                seq = self.seq(event["id"])
                check(seq == self.position, self.name, f"up-to-date at {seq}, had {self.position}")
                check(json.loads(event["data"])["head"] == event["id"], self.name, f"{event}")
                token = event["id"]
            elif event.get("event") == "change" or event.keys() == {"id"}:
                seq = self.seq(event["id"])
                check(
                    seq == self.position + 1,
                    self.name,
                    f"position {seq} after {self.position}: an entry was skipped or repeated",
                )
                if "data" in event:
                    self.apply(json.loads(event["data"]), seq)
                self.position, token = seq, event["id"]
                self.events += 1
                budget -= 1
            else:
                check(False, self.name, f"unexpected event {event}")
            if self.finished(self.position) or self.world.over() or budget <= 0:
                return token  # closing the response hangs up, even mid-backlog
        check(False, self.name, "the stream ended")
        return token


class PageClient(Replica):
    """Polls `/api/changes` with small random limits, resuming from `next`; sometimes on a
    new connection. Checks that the pages' ranges chain."""

    def __init__(self, world: World, name: str, user_id: str, rng: random.Random) -> None:
        super().__init__(world, name, user_id)
        self.rng = rng
        self.covered = 0  # pages have covered (0, covered]
        self.pages = 0

    def run(self) -> None:
        since: str | None = None
        while not self.finished(self.covered) and not self.world.over():
            self.connections += 1
            with httpx.Client(
                base_url=self.world.url, headers=self.world.bearer(self.user_id), timeout=20
            ) as http:
                while not self.finished(self.covered) and not self.world.over():
                    since, up_to_date = self._page(http, since)
                    if up_to_date:  # poll again a little later
                        self.world.writers_done.wait(self.rng.random() * 0.02)
                    if self.rng.random() < 0.15:
                        break  # reconnect

    def _page(self, http: httpx.Client, since: str | None) -> tuple[str, bool]:
        check = self.world.check
        limit = self.rng.randint(1, 12)
        params: dict[str, str | int] = {"limit": limit}
        if since is not None:
            params["since"] = since
        response = http.get("/api/changes", params=params)
        check(response.status_code == 200, self.name, response.text)
        body = response.json()
        self.pages += 1
        start, end = (self.seq(t) for t in body["covers"])
        check(start == self.covered, self.name, f"covers {start}..{end} after {self.covered}")
        check(since is None or body["covers"][0] == since, self.name, f"{body} after {since}")
        check(body["next"] == body["covers"][1] and end >= start, self.name, f"{body}")
        check(len(body["changes"]) <= limit, self.name, f"{len(body['changes'])} > {limit}")
        for entry in body["changes"]:
            seq = self.seq(entry["token"])
            check(start < seq <= end, self.name, f"entry {seq} outside ({start}, {end}]")
            self.apply(entry, seq)
        self.covered = end
        return body["next"], bool(body["up_to_date"])


# --- the expected state ---------------------------------------------------------------------


def expected_state(catalog: Catalog, user_id: str) -> dict[Key, Any]:
    """The user's entities as the feed shows them, straight from the catalog tables."""
    a, s, r, u = schema.assets, schema.sources, schema.sync_runs, schema.users
    state: dict[Key, Any] = {}
    with catalog.read() as conn:
        asset_ids = list(conn.execute(select(a.c.id).where(a.c.owner_id == user_id)).scalars())
        for summary in asset_summaries(conn, asset_ids):
            state[("asset", summary["id"])] = summary
        columns = (s.c.id, s.c.name, s.c.kind, s.c.status, s.c.status_detail)
        for row in conn.execute(select(*columns).where(s.c.owner_id == user_id)).mappings():
            state[("source", row["id"])] = dict(row)
        run_ids = list(
            conn.execute(
                select(r.c.id).join(s, s.c.id == r.c.source_id).where(s.c.owner_id == user_id)
            ).scalars()
        )
        for run in run_states(conn, run_ids) if run_ids else []:
            state[("sync_run", run["id"])] = run
        user = conn.execute(select(u.c.id, u.c.name).where(u.c.id == user_id)).mappings().one()
        state[("user", user_id)] = dict(user)
    # As the client has it: through JSON.
    return {(k[0], k[1]): v for k, v in json.loads(json.dumps(list(state.items())))}


def scoped_seqs(catalog: Catalog) -> dict[str, list[int]]:
    c = schema.changes
    seqs: dict[str, list[int]] = {}
    with catalog.read() as conn:
        for seq, scope in conn.execute(select(c.c.seq, c.c.scope).order_by(c.c.seq)):
            seqs.setdefault(scope, []).append(int(seq))
    return seqs


def differences(replica: dict[Key, Any], expected: dict[Key, Any]) -> list[str]:
    found = []
    for key in sorted(expected.keys() | replica.keys()):
        if key not in replica:
            found.append(f"missing {key}: {expected[key]}")
        elif key not in expected:
            found.append(f"extra {key} (gone from the catalog): {replica[key]}")
        elif replica[key] != expected[key]:
            found.append(f"stale {key}: got {replica[key]}, catalog has {expected[key]}")
    return found


# --- the test -------------------------------------------------------------------------------


def test_feed_replicas_converge_under_concurrent_writes(
    catalog: Catalog, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A stream cut mid-batch keeps writing to the closed socket until the batch ends; asyncio
    # logs each such write. Expected here (clients hang up mid-backlog on purpose).
    caplog.set_level(logging.ERROR, logger="asyncio")
    started = time.monotonic()
    world = World(catalog, SEED)
    rng = random.Random(f"{SEED}/setup")
    world.user_ids["admin"] = catalog.default_owner_id
    for name in USERS:
        world.user_ids[name] = add_user(catalog, name).id
    for name, user_id in world.user_ids.items():
        world.own(("user", user_id), user_id)
        world.tokens[user_id] = create_token(catalog, user_id, "property")[0]
        world.assets[user_id] = []
        source_id = new_id()
        world.own(("source", source_id), user_id)
        with catalog.write() as tx:
            create_source(
                tx,
                source_id=source_id,
                kind="folder",
                name=f"base-{name}",
                owner_id=user_id,
                options={},
            )
        world.base_sources[user_id] = source_id

    with served(catalog, tmp_path / "blobs") as url:
        world.url = url
        writers = [Writer(world, i) for i in range(WRITERS)]
        clients: list[SseClient | PageClient] = []
        for name, user_id in world.user_ids.items():
            sse_count = 2 if name == USERS[0] else 1
            for i in range(sse_count):
                client_rng = random.Random(f"{SEED}/sse/{name}/{i}")
                clients.append(SseClient(world, f"sse-{name}-{i}", user_id, client_rng))
            page_rng = random.Random(f"{SEED}/pages/{name}")
            clients.append(PageClient(world, f"pages-{name}", user_id, page_rng))
        rng.shuffle(clients)
        client_threads = [guarded(world, c.name, c.run) for c in clients]
        writer_threads = [guarded(world, f"writer-{w.index}", w.run) for w in writers]
        for thread in client_threads + writer_threads:
            thread.start()
        for thread in writer_threads:
            thread.join(DEADLINE_SECONDS)
        writes_took = time.monotonic() - started
        world.final_head = catalog.head()
        world.writers_done.set()
        for thread in client_threads:
            thread.join(max(1.0, world.deadline - time.monotonic()))
        world.abort.set()  # stop whatever is left, so the server can shut down
        hung = [t.name for t in client_threads + writer_threads if t.is_alive()]

    if world.errors:
        pytest.fail("\n".join(world.errors), pytrace=False)
    assert not hung, f"{world.label} threads still running at the deadline: {hung}"
    final = world.final_head
    assert final is not None and final == catalog.head(), world.label

    scoped = scoped_seqs(catalog)
    for client in clients:
        who = f"{world.label} {client.name}"
        user_id = client.user_id
        if isinstance(client, SseClient):
            assert client.position == final, f"{who}: stopped at {client.position} of {final}"
        else:
            assert client.covered == final, f"{who}: covered {client.covered} of {final}"
        mine = scoped.get(user_id, [])
        assert client.visible == mine, (
            f"{who}: shown {len(client.visible)} entries, the log holds {len(mine)} for it; "
            f"never shown: {sorted(set(mine) - set(client.visible))[:20]}, "
            f"not its own: {sorted(set(client.visible) - set(mine))[:20]}"
        )
        strangers = {k: world.owner(k) for k in client.received if world.owner(k) != user_id}
        assert not strangers, f"{who}: received other users' entities {strangers}"
        diff = differences(client.state, expected_state(catalog, user_id))
        assert not diff, f"{who}: replica differs from the catalog:\n" + "\n".join(diff[:20])

    ops: dict[str, int] = {}
    for writer in writers:
        for op, n in writer.ops.items():
            ops[op] = ops.get(op, 0) + n
    sse = [c for c in clients if isinstance(c, SseClient)]
    pagers = [c for c in clients if isinstance(c, PageClient)]
    print(
        f"{world.label} {final} entries from {sum(ops.values())} ops {ops}; "
        f"SSE: {sum(c.connections for c in sse)} connections, "
        f"{sum(c.events for c in sse)} entry events, {sum(c.heartbeats for c in sse)} heartbeats; "
        f"pages: {sum(c.pages for c in pagers)} in {sum(c.connections for c in pagers)} "
        f"connections; writes done at {writes_took:.1f}s, all at {time.monotonic() - started:.1f}s"
    )
