"""Which file names a scan, a watcher or the push client must ignore.

One implementation for folder sources and for push: temporary and partial names written by
editors, browsers and cloud-drive clients, and hidden files (which covers `.DS_Store`,
`.dropbox*`, `.sync*`, `.~lock*` and the legacy `.sd-id`). Plain prefix/suffix tests rather than
glob patterns: this runs once per file on every rescan of a 100,000-file tree.
"""

from __future__ import annotations

__all__ = ["ID_FILE_NAMES", "IGNORED_PREFIXES", "IGNORED_SUFFIXES", "is_ignored_name"]

ID_FILE_NAMES = frozenset({"SD_ID", ".sd-id"})
IGNORED_PREFIXES = (".", "~$")
IGNORED_SUFFIXES = (
    ".tmp",
    ".temp",
    ".part",
    ".partial",
    ".crdownload",
    ".download",
    ".icloud",
    ".swp",
    "~",
)
_IGNORED_NAMES = frozenset({"desktop.ini", "thumbs.db"}) | {n.lower() for n in ID_FILE_NAMES}


def is_ignored_name(name: str) -> bool:
    """True for a name that is hidden, an id file, or a temporary/partial name."""
    if not name or name.startswith(IGNORED_PREFIXES):
        return True
    lowered = name.lower()
    return lowered.endswith(IGNORED_SUFFIXES) or lowered in _IGNORED_NAMES
