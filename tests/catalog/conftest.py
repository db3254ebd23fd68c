"""Fixtures shared by the catalog tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gallerysync.catalog import Catalog


@pytest.fixture
def two_catalogs(catalog_url: str) -> Iterator[tuple[Catalog, Catalog]]:
    """Two independent handles (own engine, own in-process write lock) on one database."""
    first = Catalog.open(catalog_url)
    second = Catalog.open(catalog_url)
    try:
        yield first, second
    finally:
        first.close()
        second.close()
