"""Sizes of the full and the quick (`--quick`) stash run."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class StashSizes:
    images: int  # each in one gallery, `second_gallery` of them in a second one too
    galleries: int
    tags: int
    performers: int
    studios: int
    second_gallery: float  # share of the images in a second gallery
    initial_runs: int  # initial full syncs, each on a fresh home (the fastest is the figure)
    smart_runs: int  # no-change smart syncs (the median is the figure)
    edits: int  # images edited before each incremental sync
    edit_rounds: int  # incremental syncs (and gallery edits), each after fresh edits
    limit_repeats: int  # best of, for the SQLite limit
    seed: int

    def scaled(self, divisor: int) -> StashSizes:
        """The same library shape at 1/`divisor` of the counts (the second library, which
        shows what grows with the library and what does not)."""
        return dataclasses.replace(
            self,
            images=max(1, self.images // divisor),
            galleries=max(1, self.galleries // divisor),
            tags=max(1, self.tags // divisor),
            performers=max(1, self.performers // divisor),
            studios=max(1, self.studios // divisor),
            seed=self.seed + 1,
        )

    @property
    def entities(self) -> int:
        return self.galleries + self.tags + self.performers + self.studios


FULL = StashSizes(
    images=100_000,
    galleries=2_000,
    tags=500,
    performers=300,
    studios=50,
    second_gallery=0.1,
    initial_runs=2,
    smart_runs=5,
    edits=100,
    edit_rounds=3,
    limit_repeats=3,
    seed=20261121,
)
QUICK = dataclasses.replace(
    FULL, images=10_000, galleries=200, tags=50, performers=30, studios=5, initial_runs=3
)
SMALLER = 10  # the second library is 1/10 of the first, in both modes
