"""gallerysync under test: a fresh home with a Stash source, and syncs through `RemoteSync`
with a prebuilt connector that records every GraphQL request it sends.

`sync()` does what `Runtime.sync_remote` does — `asyncio.run(RemoteSync(catalog, source,
mode=..., sweep_max_fraction=..., retry_base=...).run())` — except that the connector is built
here on a `new_session()` (as `RemoteSync` builds its own) from bench-side subclasses that only
time and count: `RecordingStash` (each `query` — POST, reply, orjson decode — and each
`_parse`) and `TimedSync` (each `_apply`, the per-page catalog transaction). The wall time is
the whole `asyncio.run`, session set-up included, as for the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from remote.homes import pinned_environ
from run import REPO_DIR


@dataclass
class SyncRun:
    mode: str
    seconds: float
    report: Any  # RemoteReport
    requests: int  # GraphQL requests the connector sent
    queries: list[str]  # their texts, in order
    query_seconds: float  # inside `query`: POST, wait for the reply, read, orjson decode
    parse_seconds: float  # inside `_parse`: nodes -> RemoteItem / RemoteEntity
    apply_seconds: float  # inside `RemoteSync._apply`: the catalog transactions
    applies: int
    double_cpu: float = 0.0  # CPU the double used meanwhile (filled in by the caller)
    double_requests: int = 0  # the double's own counter of GraphQL requests meanwhile
    settled: int = 0  # distinct origins `settle_origins` re-derived (when counted)
    settle_calls: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "seconds": self.seconds,
            "report": self.report.as_json(),
            "requests": self.requests,
            "double_requests": self.double_requests,
            "query_seconds": self.query_seconds,
            "parse_seconds": self.parse_seconds,
            "apply_seconds": self.apply_seconds,
            "applies": self.applies,
            "double_cpu_seconds": self.double_cpu,
            "settled_origins": self.settled,
            "settle_calls": self.settle_calls,
            "queries": [_short(q) for q in self.queries],
        }


def _short(query: str) -> str:
    """A query's operation and arguments, without the field selection."""
    return query if len(query) < 160 else query[:150] + " …"


def _classes() -> tuple[type, type]:
    from gallerysync.sources.stash.connector import StashSource
    from gallerysync.sync.remote import RemoteSync

    class RecordingStash(StashSource):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.sent: list[str] = []
            self.query_seconds = 0.0
            self.parse_seconds = 0.0

        async def query(self, text: str, what: str) -> dict[str, Any]:
            self.sent.append(text)
            started = time.perf_counter()
            try:
                return await super().query(text, what)
            finally:
                self.query_seconds += time.perf_counter() - started

        def _parse(self, etype: str, nodes: list[Any]) -> Any:
            started = time.perf_counter()
            try:
                return super()._parse(etype, nodes)
            finally:
                self.parse_seconds += time.perf_counter() - started

    class TimedSync(RemoteSync):
        apply_seconds = 0.0
        applies = 0

        def _apply(self, *args: Any, **kwargs: Any) -> None:
            started = time.perf_counter()
            try:
                super()._apply(*args, **kwargs)
            finally:
                self.apply_seconds += time.perf_counter() - started
                self.applies += 1

    return RecordingStash, TimedSync


class StashHome:
    """A fresh gallerysync home (every `GALLERYSYNC_*` of the caller dropped: SQLite in the
    home, auth off, defaults), its runtime open, with the Stash source added as the CLI's
    `source add stash URL --api-key KEY --download off` does."""

    def __init__(self, path: Path, url: str, api_key: str) -> None:
        from gallerysync.config import load_settings
        from gallerysync.runtime import open_runtime
        from gallerysync.sync.remote import add_remote_source

        shutil.rmtree(path, ignore_errors=True)
        self.path = path
        self.settings = load_settings(path, environ=pinned_environ())
        self.runtime = open_runtime(self.settings)
        self.source = add_remote_source(
            self.runtime.catalog,
            "stash",
            url,
            name=None,
            download="off",
            extra={"api_key": api_key},
        )

    def sync(self, mode: str) -> SyncRun:
        from gallerysync.sources.http import new_session

        recording, timed = _classes()
        source = self.runtime.source_by_id(self.source.id)
        settings = self.settings

        async def go() -> tuple[Any, Any, Any]:
            async with new_session() as session:
                connector = recording(source.options["url"], source.options["api_key"], session)
                sync = timed(
                    self.runtime.catalog,
                    source,
                    mode=mode,
                    sweep_max_fraction=settings.sweep_max_fraction,
                    retry_base=settings.retry_base_seconds,
                    connector=connector,
                )
                report = await sync.run()
                await connector.close()
                return report, connector, sync

        started = time.perf_counter()
        report, connector, sync = asyncio.run(go())
        seconds = time.perf_counter() - started
        return SyncRun(
            mode,
            seconds,
            report,
            connector.requests,
            list(connector.sent),
            connector.query_seconds,
            connector.parse_seconds,
            sync.apply_seconds,
            sync.applies,
        )

    # --- what the catalog holds ------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        with self._conn() as conn:
            sid = self.source.id
            one = conn.execute

            def q(sql: str) -> int:
                return int(one(sql, (sid,)).fetchone()[0])

            return {
                "origins": q("SELECT count(*) FROM origins WHERE source_id = ?"),
                "present": q(
                    "SELECT count(*) FROM origins WHERE source_id = ? AND status = 'present'"
                ),
                "assets": q("SELECT count(DISTINCT asset_id) FROM origins WHERE source_id = ?"),
                "entities": q("SELECT count(*) FROM entities WHERE source_id = ?"),
                "links": q("SELECT count(*) FROM links WHERE source_id = ?"),
                "origin_entities": q(
                    "SELECT count(*) FROM origin_entities oe JOIN origins o "
                    "ON o.id = oe.origin_id WHERE o.source_id = ?"
                ),
                **{
                    f"entities_{kind}": int(n)
                    for kind, n in one(
                        "SELECT kind, count(*) FROM entities WHERE source_id = ? GROUP BY kind",
                        (sid,),
                    )
                },
            }

    def titles(self, remote_ids: list[str]) -> dict[str, str | None]:
        with self._conn() as conn:
            found: dict[str, str | None] = {}
            for key in remote_ids:
                row = conn.execute(
                    "SELECT meta FROM origins WHERE source_id = ? AND remote_id = ?",
                    (self.source.id, key),
                ).fetchone()
                found[key] = None if row is None else json.loads(row[0]).get("title")
            return found

    def link_targets(self, subject: str, prefix: str) -> list[str]:
        with self._conn() as conn:
            return sorted(
                r[0]
                for r in conn.execute(
                    "SELECT target FROM links WHERE source_id = ? AND subject = ? "
                    "AND target LIKE ?",
                    (self.source.id, subject, prefix + "%"),
                )
            )

    def origins_with_entity(self, entity_key: str, subjects: list[str]) -> int:
        """How many of these origins resolve a link (own or inherited) to `entity_key`."""
        with self._conn() as conn:
            marks = ",".join("?" for _ in subjects)
            row = conn.execute(
                "SELECT count(*) FROM origins o JOIN origin_entities oe ON oe.origin_id = o.id "
                "JOIN entities e ON e.id = oe.entity_id WHERE o.source_id = ? AND "
                f"e.remote_id = ? AND o.remote_id IN ({marks})",
                (self.source.id, entity_key, *subjects),
            ).fetchone()
            return int(row[0])

    @contextlib.contextmanager
    def _conn(self) -> Iterator[Any]:
        import run

        with run.catalog_ro(self.path) as conn:
            yield conn

    def catalog_bytes(self) -> int:
        return sum(
            (self.path / name).stat().st_size
            for name in ("catalog.sqlite3", "catalog.sqlite3-wal")
            if (self.path / name).exists()
        )

    def view(self) -> dict[str, Any]:
        """`tests/sources/stash_support.catalog_view`: entities and, per present origin, its
        resolved links and inherited values — the form the parity tests compare."""
        if str(REPO_DIR) not in sys.path:
            sys.path.append(str(REPO_DIR))
        from tests.sources.stash_support import catalog_view

        view = catalog_view(self.runtime, self.source)
        return {**view, "missing": sorted(view["missing"])}

    def close(self, *, remove: bool) -> None:
        self.runtime.close()
        if remove:
            shutil.rmtree(self.path, ignore_errors=True)


@dataclass
class SettleCount:
    origins: set[str] = field(default_factory=set)
    calls: int = 0


@contextlib.contextmanager
def counting_settles() -> Iterator[SettleCount]:
    """Count the origins `settle_origins` re-derives (the post-processing step) by wrapping
    the function where the engine looks it up (`catalog.organise` and `catalog.remote`)."""
    from gallerysync.catalog import organise
    from gallerysync.catalog import remote as catalog_remote

    original = organise.settle_origins
    count = SettleCount()

    def counted(tx: Any, origin_ids: Any, counts: Any) -> Any:
        count.calls += 1
        count.origins.update(origin_ids)
        return original(tx, origin_ids, counts)

    organise.settle_origins = counted  # type: ignore[assignment]
    catalog_remote.settle_origins = counted  # type: ignore[attr-defined]
    try:
        yield count
    finally:
        organise.settle_origins = original  # type: ignore[assignment]
        catalog_remote.settle_origins = original  # type: ignore[attr-defined]


def compare_views(got: dict[str, Any], oracle_path: Path) -> dict[str, Any]:
    """The catalog's view against the double's oracle (`stash_support.oracle`): how many
    entities and origins differ (JSON-normalised: tuples become lists)."""
    want = json.loads(oracle_path.read_text())
    have = json.loads(json.dumps({k: v for k, v in got.items() if k != "missing"}))
    bad_entities = sorted(
        k
        for k in set(want["entities"]) | set(have["entities"])
        if want["entities"].get(k) != have["entities"].get(k)
    )
    bad_origins = sorted(
        k
        for k in set(want["origins"]) | set(have["origins"])
        if want["origins"].get(k) != have["origins"].get(k)
    )
    return {
        "entities": len(want["entities"]),
        "origins": len(want["origins"]),
        "entities_differing": len(bad_entities),
        "origins_differing": len(bad_origins),
        "missing": len(got["missing"]),
        "examples": [
            {"key": k, "want": want["entities"].get(k), "got": have["entities"].get(k)}
            for k in bad_entities[:3]
        ]
        + [
            {"key": k, "want": want["origins"].get(k), "got": have["origins"].get(k)}
            for k in bad_origins[:3]
        ],
    }


@dataclass
class HotSpot:
    function: str
    calls: int
    own_seconds: float
    cumulative_seconds: float


@dataclass
class Profile:
    what: str
    seconds: float  # the profiled sync's wall time (cProfile adds overhead)
    waiting: float  # own time in epoll: the event loop idle, waiting on the double
    by_own_time: list[HotSpot]  # the waiting left out
    engine_by_cumulative: list[HotSpot]  # gallerysync's own functions


def profiled_sync(home: StashHome, mode: str, what: str, top: int = 20) -> tuple[SyncRun, Profile]:
    """One sync under cProfile. cProfile sees only the thread it was enabled in, so for this
    run `asyncio.to_thread` is replaced by an inline call: the catalog work (which the engine
    awaits in a worker thread, one call at a time) then runs on the event loop's thread, where
    the profiler sees it. Not a timed run."""
    import cProfile
    import pstats

    async def inline(func: Any, /, *args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    original = asyncio.to_thread
    profiler = cProfile.Profile()
    asyncio.to_thread = inline  # type: ignore[assignment]
    profiler.enable()
    try:
        result = home.sync(mode)
    finally:
        profiler.disable()
        asyncio.to_thread = original
    stats = pstats.Stats(profiler)
    entries = []
    for (filename, line, name), (_cc, calls, own, cumulative, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        label = name if filename == "~" else f"{_module(filename)}:{line}({name})"
        entries.append((filename, HotSpot(label, calls, own, cumulative)))
    waiting = sum(e.own_seconds for _f, e in entries if "select.epoll" in e.function)
    by_own = sorted(
        (e for _f, e in entries if "select.epoll" not in e.function), key=lambda e: -e.own_seconds
    )[:top]
    engine = sorted(
        (e for f, e in entries if "/gallerysync/" in f and "/bench/" not in f),
        key=lambda e: -e.cumulative_seconds,
    )
    wrappers = ("run", "_run_types", "_run_with", "_retrying", "with_retries", "_sync_type")
    skip = {*wrappers, "_next_page"}
    engine = [e for e in engine if e.function.rsplit("(", 1)[-1].rstrip(")") not in skip]
    return result, Profile(what, result.seconds, waiting, by_own, engine[:top])


def _module(filename: str) -> str:
    """`.../site-packages/sqlalchemy/engine/base.py` -> `sqlalchemy.engine.base`."""
    for pattern in (r"/site-packages/(.+)\.py$", r"/src/(.+)\.py$", r"/python3\.\d+/(.+)\.py$"):
        match = re.search(pattern, filename)
        if match:
            return match.group(1).replace("/", ".")
    return Path(filename).stem
