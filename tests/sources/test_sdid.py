"""SD_ID identity and the legacy `.sd-id` migration, through `source add` and scans."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from gallerysync.catalog import Catalog
from gallerysync.catalog.sources import get_storage_dir
from gallerysync.errors import ConflictError, StorageDirError
from gallerysync.sources.folder.sdid import resolve_sd_id
from gallerysync.sync.folder import FolderScan, add_folder
from tests.helpers import write_image


def _folder(tmp_path: Path) -> Path:
    root = tmp_path / "sd"
    write_image(root / "a.jpg", 1)
    return root


def test_add_writes_sd_id_and_uses_it_as_source_id(sqlite_catalog: Catalog, tmp_path: Path) -> None:
    root = _folder(tmp_path)
    source = add_folder(sqlite_catalog, root)
    assert (root / "SD_ID").read_text().strip() == source.id
    assert uuid.UUID(source.id).version == 4


def test_only_legacy_is_renamed(sqlite_catalog: Catalog, tmp_path: Path) -> None:
    root = _folder(tmp_path)
    legacy = str(uuid.uuid4())
    (root / ".sd-id").write_text(legacy + "\n")
    source = add_folder(sqlite_catalog, root)
    assert source.id == legacy
    assert not (root / ".sd-id").exists()
    assert (root / "SD_ID").read_text().strip() == legacy
    with sqlite_catalog.read() as conn:
        assert get_storage_dir(conn, source.id).id_file_status == "migrated"


def test_both_equal_removes_legacy(sqlite_catalog: Catalog, tmp_path: Path) -> None:
    root = _folder(tmp_path)
    sd_id = str(uuid.uuid4())
    (root / "SD_ID").write_text(sd_id)
    (root / ".sd-id").write_text(sd_id.upper())  # same UUID, other spelling
    source = add_folder(sqlite_catalog, root)
    assert source.id == sd_id
    assert not (root / ".sd-id").exists()
    with sqlite_catalog.read() as conn:
        assert get_storage_dir(conn, source.id).id_file_status == "migrated"


def test_both_different_on_new_catalog_keeps_sd_id(sqlite_catalog: Catalog, tmp_path: Path) -> None:
    root = _folder(tmp_path)
    current, legacy = str(uuid.uuid4()), str(uuid.uuid4())
    (root / "SD_ID").write_text(current)
    (root / ".sd-id").write_text(legacy)
    source = add_folder(sqlite_catalog, root)
    assert source.id == current
    with sqlite_catalog.read() as conn:
        sd = get_storage_dir(conn, source.id)
    assert (sd.id_file_status, sd.alias_id) == ("conflict", legacy)
    assert (root / ".sd-id").read_text().strip() == legacy  # nothing destroyed


def test_both_different_keeps_the_id_the_catalog_knows(
    sqlite_catalog: Catalog, tmp_path: Path
) -> None:
    root = _folder(tmp_path)
    legacy = str(uuid.uuid4())
    (root / ".sd-id").write_text(legacy)
    source = add_folder(sqlite_catalog, root)  # the catalog now knows `legacy`
    assert source.id == legacy
    other = str(uuid.uuid4())
    (root / "SD_ID").write_text(other)  # another machine wrote a different SD_ID …
    (root / ".sd-id").write_text(legacy)  # … and an old client re-created the legacy file
    report = FolderScan(sqlite_catalog, source).run()
    assert report.status == "ok"
    with sqlite_catalog.read() as conn:
        sd = get_storage_dir(conn, source.id)
    assert (sd.id_file_status, sd.alias_id) == ("conflict", other)
    identity = resolve_sd_id(root, {legacy}, create=False)
    assert identity.sd_id == legacy


def test_same_folder_in_two_homes_is_the_same_source(tmp_path: Path) -> None:
    root = _folder(tmp_path)
    first = Catalog.open(f"sqlite:///{tmp_path / 'one.sqlite3'}")
    second = Catalog.open(f"sqlite:///{tmp_path / 'two.sqlite3'}")
    try:
        assert add_folder(first, root).id == add_folder(second, root, name="other").id
    finally:
        first.close()
        second.close()


def test_adding_the_same_folder_twice_is_refused(sqlite_catalog: Catalog, tmp_path: Path) -> None:
    root = _folder(tmp_path)
    add_folder(sqlite_catalog, root)
    with pytest.raises(ConflictError, match="already added"):
        add_folder(sqlite_catalog, root, name="again")


def test_malformed_sd_id_is_a_clear_error(sqlite_catalog: Catalog, tmp_path: Path) -> None:
    root = _folder(tmp_path)
    (root / "SD_ID").write_text("not-a-uuid")
    with pytest.raises(StorageDirError, match="does not hold a UUID"):
        add_folder(sqlite_catalog, root)


def test_foreign_sd_mounted_at_root_is_offline(sqlite_catalog: Catalog, tmp_path: Path) -> None:
    root = _folder(tmp_path)
    source = add_folder(sqlite_catalog, root)
    assert FolderScan(sqlite_catalog, source).run().counts.added == 1
    (root / "SD_ID").write_text(str(uuid.uuid4()))  # a different storage dir is there now
    (root / "a.jpg").unlink()
    write_image(root / "b.jpg", 2)
    report = FolderScan(sqlite_catalog, source).run()
    assert report.status == "offline"
    assert report.counts.missing == 0 and report.counts.added == 0


def test_deleted_sd_id_is_restored(sqlite_catalog: Catalog, tmp_path: Path) -> None:
    root = _folder(tmp_path)
    source = add_folder(sqlite_catalog, root)
    (root / "SD_ID").unlink()
    assert FolderScan(sqlite_catalog, source).run().status == "ok"
    assert (root / "SD_ID").read_text().strip() == source.id


def test_other_folder_without_sd_id_at_the_root_is_offline(
    sqlite_catalog: Catalog, tmp_path: Path
) -> None:
    root = _folder(tmp_path)
    source = add_folder(sqlite_catalog, root)
    assert FolderScan(sqlite_catalog, source).run().counts.added == 1
    root.rename(tmp_path / "parked")
    write_image(root / "someone-else.jpg", 9)  # a different folder, no SD_ID, same path
    report = FolderScan(sqlite_catalog, source).run()
    assert report.status == "offline" and "another folder" in report.detail
    assert report.counts.missing == 0
    assert not (root / "SD_ID").exists()
