"""Fresh in-process gallerysync homes for the remote figures."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from live.servers import GALLERYSYNC_ENV


def pinned_environ() -> dict[str, str]:
    """The caller's environment without any GALLERYSYNC_* setting, plus the bench's pins
    (SQLite in the home, auth off): every in-process home runs on the defaults."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GALLERYSYNC_")}
    return {**env, **GALLERYSYNC_ENV}


class Home:
    """A fresh home, its runtime open, with one remote source added."""

    def __init__(
        self,
        path: Path,
        kind: str,
        url: str,
        *,
        download: str = "off",
        extra: dict[str, Any] | None = None,
    ) -> None:
        from gallerysync.config import load_settings
        from gallerysync.runtime import open_runtime
        from gallerysync.sync.remote import add_remote_source

        shutil.rmtree(path, ignore_errors=True)
        self.path = path
        self.settings = load_settings(path, environ=pinned_environ())
        self.runtime = open_runtime(self.settings)
        self.source = add_remote_source(
            self.runtime.catalog, kind, url, name=kind, download=download, extra=extra
        )

    def catalog_bytes(self) -> int:
        return sum(
            (self.path / name).stat().st_size
            for name in ("catalog.sqlite3", "catalog.sqlite3-wal")
            if (self.path / name).exists()
        )

    def close(self, *, remove: bool) -> None:
        self.runtime.close()
        if remove:
            shutil.rmtree(self.path, ignore_errors=True)
