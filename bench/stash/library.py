"""The benchmark's Stash library and its edits, made inside the double's process.

Rows get spread-out timestamps, as a library that grew over time has: the double's clock is
frozen at `START` and moves forward 1–4 s after every 1–20 rows, so no second holds more
than 20 rows (the newest second, which every smart check lists again, holds a few). Every
image is the same small PNG (phase 2 is not benchmarked: the bytes are never fetched).
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from stash.fast_double import FastStashDouble
from stash.sizes import StashSizes

__all__ = ["START", "Library"]

START = dt.datetime(2026, 3, 2, 9, 0, 0)


class Library:
    """A seeded library in a `FastStashDouble`, and the edits the figures need."""

    def __init__(self, double: FastStashDouble, sizes: StashSizes) -> None:
        self.double = double
        self.sizes = sizes
        self.rng = random.Random(sizes.seed)
        self._left = 0
        self.studios: list[int] = []
        self.tags: list[int] = []
        self.performers: list[int] = []
        self.galleries: list[int] = []
        self.edit_round = 0

    def _row(self) -> None:
        """One row made: move the clock on now and then."""
        self._left -= 1
        if self._left <= 0:
            self.double.tick(self.rng.randint(1, 4))
            self._left = self.rng.randint(1, 20)

    def build(self) -> dict[str, Any]:
        from tests.doubles.stash import png_bytes

        d, s, rng = self.double, self.sizes, self.rng
        d.freeze(START.replace(tzinfo=d.tz))
        data = png_bytes(0)  # one small PNG shared by every image
        for i in range(s.studios):
            self.studios.append(d.create("studio", name=f"Studio {i}"))
            self._row()
        for i in range(s.tags):
            self.tags.append(d.create("tag", name=f"tag {i:03d}"))
            self._row()
        for i in range(s.performers):
            self.performers.append(
                d.create("performer", name=f"Performer {i:03d}", details=f"about {i}")
            )
            self._row()
        for g in range(s.galleries):
            gallery = d.create(
                "gallery",
                title=f"Gallery {g:04d}",
                studio=rng.choice(self.studios),
                date=rng.choice([None, f"2025-{1 + g % 12:02d}-{1 + g % 28:02d}"]),
                photographer=rng.choice([None, None, f"Photographer {g % 40}"]),
                details=rng.choice([None, None, None, f"set {g}"]),
                links={
                    "tags": rng.sample(self.tags, min(len(self.tags), rng.randint(0, 3))),
                    "performers": rng.sample(
                        self.performers, min(len(self.performers), rng.randint(0, 2))
                    ),
                },
            )
            self.galleries.append(gallery)
            self._row()
            first = g * s.images // s.galleries
            last = (g + 1) * s.images // s.galleries
            for n in range(first, last):
                galleries = [gallery]
                if len(self.galleries) > 1 and rng.random() < s.second_gallery:
                    galleries.append(rng.choice(self.galleries[:-1]))
                d.create(
                    "image",
                    data=data,
                    title=f"IMG_{n:06d}",
                    date=rng.choice([None, None, "2024-06-01"]),
                    links={
                        "galleries": galleries,
                        "tags": rng.sample(self.tags, min(len(self.tags), rng.randint(0, 3))),
                        "performers": rng.sample(
                            self.performers, min(len(self.performers), rng.randint(0, 2))
                        ),
                    },
                )
                self._row()
        d.tick(60)
        d.warm()
        seconds = (d.now() - START.replace(tzinfo=d.tz)).total_seconds()
        newest = max(r.updated_at for r in d.rows["image"].values())
        return {
            "images": len(d.rows["image"]),
            "galleries": len(d.rows["gallery"]),
            "tags": len(d.rows["tag"]),
            "performers": len(d.rows["performer"]),
            "studios": len(d.rows["studio"]),
            "in_two_galleries": sum(
                len(r.links["galleries"]) > 1 for r in d.rows["image"].values()
            ),
            "image_links": sum(
                len(r.links.get(k, []))
                for r in d.rows["image"].values()
                for k in ("galleries", "tags", "performers")
            ),
            "history_seconds": seconds,
            "rows_in_newest_image_second": sum(
                r.updated_at == newest for r in d.rows["image"].values()
            ),
        }

    def edit_images(self, count: int) -> list[dict[str, Any]]:
        """`count` random images retitled and re-tagged (`imageUpdate`), a second apart every
        10 edits, starting a minute after the last change."""
        d, rng = self.double, self.rng
        self.edit_round += 1
        d.tick(60)
        chosen = rng.sample(sorted(d.rows["image"]), count)
        edits = []
        for n, image in enumerate(chosen):
            if n and n % 10 == 0:
                d.tick(1)
            title = f"edited {self.edit_round}.{n} IMG {image}"
            tags = rng.sample(self.tags, min(len(self.tags), rng.randint(1, 3)))
            d.update("image", image, title=title, links={"tags": tags})
            edits.append({"id": image, "title": title, "tags": tags})
        d.tick(1)
        d.warm()
        return edits

    def edit_gallery(self) -> dict[str, Any]:
        """One random gallery gets a performer it did not have (`galleryUpdate`): only the
        gallery's `updated_at` moves; its images inherit the performer."""
        d, rng = self.double, self.rng
        d.tick(60)
        while True:
            gallery = rng.choice(sorted(d.rows["gallery"]))
            have = list(d.rows["gallery"][gallery].links.get("performers", []))
            free = [p for p in self.performers if p not in have]
            if free:
                break
        person = rng.choice(free)
        d.update("gallery", gallery, links={"performers": [*have, person]})
        d.tick(1)
        d.warm()
        return {"gallery": gallery, "performer": person, "images": d.gallery_images(gallery)}
