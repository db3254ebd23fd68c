"""Storage-dir identity: the UUID in `<root>/SD_ID`, and migration of the legacy `.sd-id`.

The id lives in the folder, not in the catalog, so the same folder shared to several machines
(through a cloud drive, a NAS, a USB disk) is the same source everywhere.

Migration rules:
- only `.sd-id`            → renamed to `SD_ID`                       (status `migrated`)
- both, same id            → `.sd-id` removed                         (status `migrated`)
- both, different ids      → keep the id the catalog already knows, else `SD_ID`; the other
                             becomes an alias; files left untouched   (status `conflict`)
- neither                  → a new id is written when the folder is being added (`ok`),
                             otherwise reported                       (status `missing`)
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Container
from dataclasses import dataclass
from pathlib import Path

from gallerysync.errors import StorageDirError

__all__ = [
    "LEGACY_FILE",
    "SD_ID_FILE",
    "SdIdentity",
    "read_id_file",
    "resolve_sd_id",
    "write_id_file",
]

SD_ID_FILE = "SD_ID"
LEGACY_FILE = ".sd-id"


@dataclass(frozen=True)
class SdIdentity:
    sd_id: str | None
    status: str  # ok | migrated | conflict | missing
    alias_id: str | None = None
    detail: str = ""


def read_id_file(path: Path) -> str | None:
    """The UUID in an id file, normalised; None when the file does not exist."""
    try:
        text = path.read_text(encoding="utf-8", errors="strict").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise StorageDirError(f"cannot read {path}: {exc}") from exc
    try:
        return str(uuid.UUID(text))
    except ValueError as exc:
        raise StorageDirError(f"{path} does not hold a UUID (found {text[:60]!r})") from exc


def write_id_file(root: Path, sd_id: str) -> None:
    """Write `SD_ID` atomically (temp file, fsync, rename)."""
    final = root / SD_ID_FILE
    tmp = root / f".{SD_ID_FILE}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(sd_id + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, final)


def resolve_sd_id(root: Path, known_ids: Container[str], *, create: bool) -> SdIdentity:
    """Read (and migrate) a root's id files. `known_ids`: ids the catalog already has."""
    current = read_id_file(root / SD_ID_FILE)
    legacy = read_id_file(root / LEGACY_FILE)
    if current is None and legacy is None:
        if not create:
            return SdIdentity(None, "missing", detail=f"{root / SD_ID_FILE} is missing")
        new = str(uuid.uuid4())
        write_id_file(root, new)
        return SdIdentity(new, "ok")
    if legacy is None:
        return SdIdentity(current, "ok")
    if current is None:
        os.replace(root / LEGACY_FILE, root / SD_ID_FILE)
        return SdIdentity(legacy, "migrated", detail=f"renamed {LEGACY_FILE} to {SD_ID_FILE}")
    if current == legacy:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(root / LEGACY_FILE)
        return SdIdentity(current, "migrated", detail=f"removed duplicate {LEGACY_FILE}")
    keep, other = current, legacy
    if legacy in known_ids and current not in known_ids:
        keep, other = legacy, current
    return SdIdentity(
        keep,
        "conflict",
        alias_id=other,
        detail=(
            f"{SD_ID_FILE} ({current}) and {LEGACY_FILE} ({legacy}) differ; using {keep}, "
            f"{other} kept as an alias; remove the wrong file to resolve"
        ),
    )
