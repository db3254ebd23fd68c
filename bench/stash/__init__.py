"""Stash benchmarks for gallerysync: metadata sync of a large Stash library, and what a sync
costs after no change, after 100 edits and after one gallery edit. Every figure is printed
beside a limit measured in the same run, on the same machine.

Run it from the repository root (it is one suite of the single benchmark command):

    .venv/bin/python bench/run.py --suite stash [--quick] [--data DIR] [--keep-homes]

Set-up
------
* The Stash server is the project's test double (`tests/doubles/stash.py`: Stash's GraphQL
  schema, parsed, validated and executed by graphql-core) in a process of its own
  (`bench/stash/double_main.py`, driven over stdin/stdout): in the bench's process its
  threads would share the interpreter lock with the engine under test. The double answers
  every query by scanning its in-memory rows, and a gallery object counts its images by
  scanning every image — fine for tests, quadratic at 100,000 images — so the bench serves a
  subclass, `FastStashDouble` (`fast_double.py`), that keeps id-ordered rows, their
  `updated_at` texts and each gallery's images as indexes, rebuilt after each edit (outside
  any timed sync), as a real Stash's SQLite indexes would answer. Its replies are checked to
  be byte-identical to the test double's for every query shape the connector sends, on a small
  library before and after edits (a sanity check of the run). The double is not changed.
* The library (`library.py`, seeded): 100,000 images in 2,000 galleries (each image in one
  gallery, 10% also in a second), 500 tags, 300 performers, 50 studios; a gallery has a studio,
  0–3 tags and 0–2 performers and sometimes a date, photographer or details (which its images
  inherit); an image 0–3 tags, 0–2 performers, a title and sometimes a date. Timestamps are
  spread out: the double's clock is frozen and moves 1–4 s after every 1–20 rows (about 7
  hours of history; the newest second holds a few rows). Every image carries the same small
  PNG: phase 2 (bytes) is not benchmarked. A second library of 1/10 of that size (same shape,
  another seed) runs beside it in another double process, so what grows with the library
  and what does not can be told apart.
* gallerysync runs in the bench's process on a fresh SQLite home per library
  (`open_runtime(load_settings(home))` with every `GALLERYSYNC_*` of the caller's environment
  dropped), the source added with `add_remote_source(catalog, "stash", url, name=None,
  download="off", extra={"api_key": ...})`. Each sync is what `Runtime.sync_remote` runs —
  `asyncio.run(RemoteSync(catalog, source, mode=..., sweep_max_fraction=..., retry_base=...)
  .run())` — with a prebuilt connector on `new_session()`: bench-side subclasses of
  `StashSource` and `RemoteSync` that record every GraphQL request and time `query`, `_parse`
  and `_apply` (`engine.py`). The double's own request counter must agree with the
  connector's after every sync.

Figures and their limits
------------------------
1. Initial full sync (`mode="full"`, download off) of the whole library: items/s, items =
   images + entities (galleries, tags, performers, studios), best of 2 (quick: 3), each on a
   fresh home. Limit: raw SQLite — the entities, assets, origins and links rows that sync
   wrote, read back from its catalog, inserted with one `executemany` per table in one
   transaction into a fresh WAL file (synchronous=NORMAL) with gallerysync's own DDL and
   indexes; best of 3. No goal was given (info). The double's share: the sync's GraphQL
   requests replayed in order by a bare aiohttp client (replies read, not decoded), and the
   double's CPU time meanwhile; the split of the sync (in `query`, `_parse`, `_apply`); the
   rate without the double's share; and the rate at 1/10 of the library.
2. Smart sync with no change (`mode="smart"`) after the initial sync: median of 5, in ms.
   Goal < 200 ms. Limit: the same requests replayed by bare aiohttp on a new session (as each
   sync opens one), alternating with the syncs. Requests: must be one per entity type (7),
   every type skipped.
3. Incremental sync (`mode="incremental"`) after 100 image edits (`update`: a new title and
   1–3 new tags, 10 edits per second, a minute after the last change): seconds, median of 3
   rounds (fresh edits each). Goal < 2 s. Limit: its requests replayed bare. And the GraphQL
   requests it made at the full library against the same at 1/10 of it: goal ≈ 1x
   (proportional to the edits, not the library). Checked: every edited title and tag set is
   in the catalog.
4. Post-processing after one gallery edit (a performer the gallery did not have; only the
   gallery's `updated_at` moves): the smart sync after it, and the origins it re-settled —
   distinct origin ids passed to `catalog.organise.settle_origins`, counted by a bench-side
   wrapper, cross-checked with the run report's `rechecked`. Goal: re-settled ≈ 1x the
   gallery's images, at both library sizes; the sync's time at the full library <= 2x the
   same at 1/10 of it (proportional to the library would be ~10x). Checked: every image of
   the gallery resolves the new performer.

Sanity checks (the suite exits 1 when one fails): the fast double replies as the test double
does; the libraries have their counts; the initial sync adds every item, the catalog holds
one origin and one asset per image and the right entities per kind; after the initial sync
and again after every edit, the catalog's view of the source (`tests/sources/stash_support.
catalog_view`: entities with their counts, per origin its resolved links and inherited values)
equals the oracle computed from the double's rows by the parity tests' own rules
(`stash_support.oracle`); every sync is `ok` and sends as many requests as the double received;
neither double logs a traceback.

Hot spots: untimed extra runs under cProfile (an initial sync on a fresh home, a no-change
smart sync and a gallery-edit sync, all at the full library), with the catalog
work inline on the event loop's thread so the profiler sees it; the top functions are in the
results page.

`--quick` divides the sizes by 10 (10,000 images, 200 galleries, 50 tags, 30 performers, 5
studios; the second library then has 1,000 images) and takes the initial sync best of 3; the
absolute goals then apply to the smaller library.

Results: `bench/results/stash-YYYYMMDD-HHMMSS.json` (every run, its requests, counts,
profiles, environment) and `.md` (the table), and the stash section of
`bench/results/latest.md`.
"""

from __future__ import annotations

from stash.suite import stash_suite

__all__ = ["stash_suite"]
