"""The stash suite: runs every figure, writes the results page and files."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import run
from run import Results, expect, log
from stash.engine import Profile
from stash.figures import (
    bench_gallery,
    bench_incremental,
    bench_initial,
    bench_smart,
    check_built,
    check_double,
    check_oracle,
    profile_summary,
    sides,
)
from stash.sizes import FULL, QUICK, SMALLER


def stash_environment() -> dict[str, Any]:
    import aiohttp
    import graphql

    env = run.environment()
    env["aiohttp"] = aiohttp.__version__
    env["graphql_core"] = graphql.__version__
    env["sqlite"] = __import__("sqlite3").sqlite_version
    return env


def profile_markdown(profiles: list[Profile]) -> list[str]:
    out = [
        "Profiles (cProfile of extra, untimed runs; the catalog work runs inline on the event "
        "loop's thread so one profiler sees it; times include cProfile's overhead):",
    ]
    for p in profiles:
        out += [
            "",
            f"- {p.what} ({p.seconds:.2f} s under the profiler, {p.waiting:.2f} s of it "
            "waiting on the double in epoll). Own time: "
            + "; ".join(
                f"`{h.function}` {h.own_seconds:.3f}s ({h.calls} calls)" for h in p.by_own_time[:6]
            )
            + ". gallerysync functions by cumulative time: "
            + "; ".join(
                f"`{h.function}` {h.cumulative_seconds:.3f}s ({h.calls})"
                for h in p.engine_by_cumulative[:14]
            ),
        ]
    return out


def markdown(results: Results, command: str, seconds: float, profiles: list[Profile]) -> str:
    p = results.params
    env = results.environment
    head = [
        f"# gallerysync stash benchmark — {p['started']}",
        "",
        f"Command: `{command}`  ",
        f"Mode: {'quick (1/10 sizes)' if p['quick'] else 'full'}; a Stash library of "
        f"{p['images']:,} images in {p['galleries']:,} galleries ({p['second_gallery']:.0%} of "
        f"the images in a second one), {p['tags']:,} tags, {p['performers']:,} performers, "
        f"{p['studios']:,} studios, and a second library of 1/{SMALLER} of it; "
        f"{p['edits']} image edits and one gallery edit per round, {p['edit_rounds']} rounds; "
        f"medians of {p['smart_runs']} no-change smart syncs. Suite run time {seconds:.0f} s.",
    ]
    tail = [
        run.environment_text(
            env,
            f"; aiohttp {env['aiohttp']}, graphql-core {env['graphql_core']}, "
            f"SQLite {env['sqlite']}",
        ),
        "",
        "The Stash double (`tests/doubles/stash.py`, its GraphQL executed by graphql-core, with "
        "the bench's indexes: `bench/stash/fast_double.py`) runs in a process of its own on "
        "loopback; gallerysync runs in the bench's process on fresh SQLite homes, through "
        "`RemoteSync` as `Runtime.sync_remote` runs it, with a connector that records its "
        "requests. Method: see `bench/stash/`.",
        "",
        *profile_markdown(profiles),
    ]
    return run.markdown_document(head, results, tail)


def stash_suite(quick: bool, data: Path, keep_homes: bool, command: str) -> int:
    """Run the stash benchmark; returns 1 when a sanity check failed."""
    sizes = QUICK if quick else FULL
    tenth = sizes.scaled(SMALLER)
    params = {**asdict(sizes), "second_library": asdict(tenth)}
    suite = run.start_suite("stash", quick, data, params, stash_environment())
    results, homes = suite.results, suite.homes
    profiles: list[Profile] = []
    try:
        with sides(sizes, tenth, homes) as (small, main):
            for side in (small, main):
                check_built(results, side)
            results.raw["libraries"] = {side.name: side.built for side in (main, small)}
            log("stash: the fast double against the test double (same replies?) ...")
            same = small.double.call("selfcheck")
            expect(
                results, "fast double vs. test double: differing replies", same["mismatches"], []
            )
            log(f"  {same['compared']} replies compared, {len(same['mismatches'])} differ")
            results.raw["selfcheck"] = same
            profiles += bench_initial(results, main, small, homes / "home-profiled")
            profiles += bench_smart(results, main, small)
            bench_incremental(results, main, small)
            profiles += bench_gallery(results, main, small)
            for side in (small, main):
                side.runs["oracle_final"] = check_oracle(results, side, "after every edit")
            results.raw["oracle"] = {
                side.name: {k: side.runs[k] for k in ("oracle_initial", "oracle_final")}
                for side in (main, small)
            }
            doubles = (small, main)
        for side in doubles:
            check_double(results, side)
    finally:
        suite.remove_homes(keep_homes)
    results.raw["profiles"] = profile_summary(profiles)
    return suite.report(command, lambda r, seconds: markdown(r, command, seconds, profiles))
