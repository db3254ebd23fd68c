"""Fixtures of the remote-source tests: a ComfyUI double and a gallerysync home."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gallerysync.runtime import Runtime
from tests.doubles.comfyui import ComfyUIDouble
from tests.sources.remote_support import home_runtime


@pytest.fixture
def comfy(tmp_path: Path) -> Iterator[ComfyUIDouble]:
    """A ComfyUI double on a real port, with a small history cap (eviction shows early)."""
    with ComfyUIDouble(tmp_path / "comfy", history_max=50) as double:
        yield double


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    rt = home_runtime(tmp_path / "home")
    yield rt
    rt.close()
