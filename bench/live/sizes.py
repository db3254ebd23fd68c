"""Sizes of the full and the quick (`--quick`) live run."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import run


@dataclass(frozen=True)
class LiveSizes:
    assets: int
    clients: tuple[int, ...]
    publishes: int
    warmup: int
    behind: int
    list_limit: int
    list_connections: int
    list_seconds: float
    deep_pages: int
    few_assets: int
    repeats: int


FULL = LiveSizes(
    assets=run.FULL.small,
    clients=(100, 1_000),
    publishes=100,
    warmup=3,
    behind=10_000,
    list_limit=200,
    list_connections=8,
    list_seconds=5.0,
    deep_pages=50,
    few_assets=8,
    repeats=3,
)
QUICK = dataclasses.replace(
    FULL,
    assets=run.QUICK.small,
    clients=(10, 100),
    publishes=20,
    behind=1_000,
    list_seconds=2.0,
    deep_pages=5,
)
