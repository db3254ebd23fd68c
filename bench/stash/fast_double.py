"""The Stash test double with indexes: the same replies, without the per-row scans.

`tests/doubles/stash.py` keeps its rows in dicts and answers every query by scanning them,
which is right for tests of a few dozen rows and hopeless at 100,000 images: a gallery object
counts its images by scanning every image (and every image's `galleries { id }` builds its
galleries' objects), so one page of 500 images costs 500 scans of the library; every listing
sorts the whole table twice; a count with `per_page: 0` shuffles it; `updated_at > X` formats
each row's timestamp again. A real Stash answers those from SQLite indexes. `FastStashDouble`
(a subclass: the test double itself is not changed) keeps, per *generation* (every edit method
bumps it), the rows of each type in id order with their `updated_at` text and each gallery's
image ids, and answers from them:

- `findX(filter: {sort: "id"})` (the only sort the connector uses) and any `per_page: 0`
  count: rows in id order, no sort or shuffle; `updated_at GREATER_THAN` compares the cached
  texts, `galleries INCLUDES` (images) reads the gallery index; any other criterion goes
  through the double's own `_matches`. Every other query (no sort, other sorts, `ids`) is the
  double's own `_find_many`.
- `Gallery.image_count` from the index, computed only when selected; `filesize` likewise.
- `text()` is memoised (a pure function of the instant).

Everything else — GraphQL parse, validation and execution by graphql-core, JSON encoding,
HTTP, auth — is the double's own code. `compare_with_test_double()` builds one small library
in both classes from the same seed, edits it, and checks that every query shape the
connector sends gets byte-identical replies from both.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from operator import attrgetter
from typing import Any

from tests.doubles.stash import (
    _FILTER_ARG,
    _PLURAL,
    Row,
    StashDouble,
)

__all__ = ["FastStashDouble", "compare_with_test_double"]

_EDITS = (
    "create",
    "update",
    "add_gallery_images",
    "remove_gallery_images",
    "destroy",
    "merge_tags",
)


class FastStashDouble(StashDouble):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.generation = 0
        self._indexed = -1
        self._texts: dict[dt.datetime, str] = {}
        self._ordered: dict[str, list[Row]] = {}
        self._updated: dict[str, list[str]] = {}
        self._members: dict[int, list[int]] = {}  # gallery id -> image ids, sorted

    # Every edit moves the generation: the indexes are rebuilt on the next read.
    def create(self, kind: str, **kwargs: Any) -> int:
        with self._lock:
            row_id = super().create(kind, **kwargs)
            self.generation += 1
            return row_id

    def update(self, kind: str, row_id: int, **kwargs: Any) -> None:
        with self._lock:
            super().update(kind, row_id, **kwargs)
            self.generation += 1

    def add_gallery_images(self, gallery: int, image_ids: Any) -> None:
        with self._lock:
            super().add_gallery_images(gallery, image_ids)
            self.generation += 1

    def remove_gallery_images(self, gallery: int, image_ids: Any) -> None:
        with self._lock:
            super().remove_gallery_images(gallery, image_ids)
            self.generation += 1

    def destroy(self, kind: str, row_id: int) -> None:
        with self._lock:
            super().destroy(kind, row_id)
            self.generation += 1

    def merge_tags(self, sources: Any, destination: int) -> None:
        with self._lock:
            super().merge_tags(sources, destination)
            self.generation += 1

    def text(self, moment: dt.datetime) -> str:
        cached = self._texts.get(moment)
        if cached is None:
            cached = self._texts[moment] = super().text(moment)
        return cached

    def warm(self) -> None:
        """Rebuild the indexes now (after edits), so no timed request pays for it."""
        self._index()

    def _index(self) -> None:
        with self._lock:
            if self._indexed == self.generation:
                return
            for kind, rows in self.rows.items():
                ordered = sorted(rows.values(), key=attrgetter("id"))
                self._ordered[kind] = ordered
                self._updated[kind] = [self.text(r.updated_at) for r in ordered]
            members: dict[int, list[int]] = {}
            for row in self._ordered["image"]:
                for gallery in set(row.links.get("galleries", [])):
                    members.setdefault(gallery, []).append(row.id)
            self._members = members
            self._indexed = self.generation

    def gallery_images(self, gallery: int) -> list[int]:
        self._index()
        return list(self._members.get(gallery, []))

    # --- reading ---------------------------------------------------------------------------

    def _find_many(self, kind: str, info: Any, **args: Any) -> dict[str, Any]:
        find = args.get("filter") or {}
        sort = find.get("sort")
        per_page = find.get("per_page")
        per_page = 25 if per_page is None else per_page
        ids = args.get("ids") or args.get(f"{kind}_ids")
        if ids or not (sort == "id" or (sort is None and per_page == 0)):
            return super()._find_many(kind, info, **args)
        with self._lock:
            self._index()
            selected = self._select(kind, args.get(_FILTER_ARG[kind]))
            if sort and find.get("direction") == "DESC":
                selected.reverse()
            page = max(1, find.get("page") or 1)
            start = (page - 1) * per_page
            chosen = selected if per_page < 0 else selected[start : start + per_page]
            result: dict[str, Any] = {
                "count": len(selected),
                _PLURAL[kind]: [self._obj(r) for r in chosen],
            }
            if kind in ("image", "scene"):
                result["megapixels" if kind == "image" else "duration"] = 0.0
                result["filesize"] = lambda _info, rows=selected: _filesize(rows)
            return result

    def _select(self, kind: str, criteria: dict[str, Any] | None) -> list[Row]:
        ordered = self._ordered[kind]
        if not criteria:
            return list(ordered)
        if set(criteria) == {"updated_at"}:
            criterion = criteria["updated_at"]
            if criterion.get("modifier") == "GREATER_THAN":
                value = criterion["value"]
                texts = self._updated[kind]
                return [r for r, t in zip(ordered, texts, strict=True) if t > value]
        if set(criteria) == {"galleries"} and kind == "image":
            criterion = criteria["galleries"]
            values = {int(v) for v in criterion.get("value") or []}
            if criterion.get("modifier") == "INCLUDES" and values:
                found = sorted({i for g in values for i in self._members.get(g, [])})
                rows = self.rows[kind]
                return [rows[i] for i in found]
        return [r for r in ordered if self._matches(r, criteria)]

    def image_count(self, gallery: int) -> int:
        """From the index instead of a scan of every image."""
        return len(self.gallery_images(gallery))


def _filesize(rows: list[Row]) -> float:
    return float(sum(len(r.data) for r in rows))


# --- equivalence with the test double --------------------------------------------------------


def _small_library(double: StashDouble, seed: int) -> None:
    rng = random.Random(seed)
    double.freeze(dt.datetime(2026, 3, 2, 9, 0, 0, tzinfo=double.tz))
    studios = [double.create("studio", name=f"Studio {i}") for i in range(3)]
    tags = [double.create("tag", name=f"tag {i}") for i in range(8)]
    people = [double.create("performer", name=f"Person {i}") for i in range(5)]
    double.tick(2)
    galleries = [
        double.create(
            "gallery",
            title=f"Gallery {i}",
            studio=rng.choice(studios),
            date=rng.choice([None, "2024-01-01"]),
            links={"tags": rng.sample(tags, 2), "performers": rng.sample(people, 1)},
        )
        for i in range(6)
    ]
    for i in range(130):
        if i % 7 == 0:
            double.tick(1)
        double.create(
            "image",
            data=b"\x89PNG shared",
            title=f"image {i}",
            links={
                "galleries": [galleries[i % 6], *([galleries[(i + 1) % 6]] if i % 5 == 0 else [])],
                "tags": rng.sample(tags, rng.randint(0, 3)),
                "performers": rng.sample(people, rng.randint(0, 2)),
            },
        )


def _edit_small(double: StashDouble) -> None:
    double.tick(5)
    double.update("image", 40, title="edited", links={"tags": [4, 5]})
    double.update("gallery", 2, links={"performers": [1, 2]})
    double.add_gallery_images(3, [30, 31])
    double.destroy("image", 50)
    double.merge_tags([6], 7)


def _queries(url_of: Any) -> list[str]:
    """The query shapes the connector sends, from its own builders (page sizes made small so
    the 130-image library has several pages)."""
    from gallerysync.sources.stash.connector import SMART_PEEK, StashSource, _find, _find_one
    from gallerysync.sources.stash.parse import ENTITY_TYPES, FIELDS

    connector = StashSource(url_of, None, None)  # type: ignore[arg-type]
    out: list[str] = []
    since = "2026-03-02T09:00:04"
    for etype in ENTITY_TYPES:
        for page in (1, 2, 3):
            out.append(
                "{ "
                + connector._listing(
                    etype, page=page, per_page=50, criteria=None, fields=FIELDS[etype]
                )
                + " }"
            )
        criteria = {"updated_at": {"value": since, "modifier": "GREATER_THAN"}}
        out.append(
            "{ "
            + connector._listing(
                etype, page=1, per_page=SMART_PEEK, criteria=criteria, fields=FIELDS[etype]
            )
            + " total: "
            + _find(etype)
            + "(filter: {per_page: 0}) { count } }"
        )
        out.append("{ r: " + _find(etype) + "(filter: {per_page: 0}) { count } }")
        out.append(
            "{ " + connector._listing(etype, page=1, per_page=60, criteria=None, fields="id") + " }"
        )
        out.append(
            "{ "
            + " ".join(
                f'i{i}: {_find_one(etype)}(id: "{n}") {{ {FIELDS[etype]} }}'
                for i, n in enumerate((1, 20, 40, 50, 999))
            )
            + " }"
        )
    for galleries in (["1"], ["1", "3", "5"], ["2"]):
        criteria = {"galleries": {"value": galleries, "modifier": "INCLUDES"}}
        out.append(
            "{ "
            + connector._listing(
                "image", page=1, per_page=50, criteria=criteria, fields=FIELDS["image"]
            )
            + " }"
        )
    return out


def compare_with_test_double(seed: int = 7) -> dict[str, Any]:
    """Build one small library in `StashDouble` and in `FastStashDouble` from `seed`, and
    compare their replies to every query shape the connector sends, before and after a few
    edits (a retitle, a gallery's performers, gallery membership, a delete, a tag merge)."""
    plain = StashDouble(api_key=None, seed=seed)
    fast = FastStashDouble(api_key=None, seed=seed)
    compared = 0
    mismatches: list[str] = []
    for stage in ("built", "edited"):
        for double in (plain, fast):
            if stage == "built":
                _small_library(double, seed)
            else:
                _edit_small(double)
        for query in _queries("http://127.0.0.1:0"):
            body = json.dumps({"query": query}).encode()
            want, got = plain._graphql(body), fast._graphql(body)
            compared += 1
            if want != got:
                mismatches.append(f"{stage}: {query[:120]}")
    return {"compared": compared, "mismatches": mismatches}
