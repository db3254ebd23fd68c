"""Folder scans against real files: registration, errors, rescans, moves, duplicates, offline."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gallerysync.blobs.hashing import hash_bytes
from gallerysync.catalog import Catalog, schema
from gallerysync.catalog.assets import get_asset, list_assets
from gallerysync.catalog.scan_cache import cache_errors
from gallerysync.domain import AssetStatus, Source
from gallerysync.sources.folder.walk import FileError, Gone, Unstable, examine, walk
from gallerysync.sync.folder import FolderScan, ScanReport, add_folder, find_asset_file
from tests.helpers import image_bytes, write_image


def scan(catalog: Catalog, source: Source) -> ScanReport:
    return FolderScan(catalog, source, batch_size=97).run()


def asset_by_path(catalog: Catalog, source: Source, rel: str) -> str:
    with catalog.read() as conn:
        row = conn.execute(
            select(schema.origins.c.asset_id).where(
                schema.origins.c.source_id == source.id, schema.origins.c.remote_id == rel
            )
        ).first()
    assert row is not None, rel
    return str(row[0])


def counts_in_db(catalog: Catalog) -> tuple[int, int]:
    with catalog.read() as conn:
        assets = conn.execute(select(func.count()).select_from(schema.assets)).scalar_one()
        origins = conn.execute(select(func.count()).select_from(schema.origins)).scalar_one()
    return int(assets), int(origins)


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    """1,000 images in nested folders plus every kind of trouble a real folder holds."""
    root = tmp_path / "photos"
    expected: dict[str, bytes] = {}
    formats = ["jpg", "png", "gif", "webp", "tiff"]
    for i in range(1000):
        folder = f"y{i % 4}/m{i % 7}" if i % 3 else f"flat{i % 5}"
        name = f"ünïcødé-写真-{i}.{formats[i % 5]}" if i % 10 == 0 else f"img{i}.{formats[i % 5]}"
        rel = f"{folder}/{name}"
        expected[rel] = write_image(root / rel, i)
    (root / "empty.jpg").write_bytes(b"")
    truncated = image_bytes(5000, "JPEG", (64, 64))
    (root / "cut.jpg").write_bytes(truncated[: len(truncated) // 2])
    (root / "notes.txt").write_text("not an image")
    (root / "fake.png").write_text("text with an image extension")
    (root / "y0" / "loop").symlink_to("..")
    (root / "link.jpg").symlink_to(root / "y0" / "m1" / "img1.png")
    (root / "draft.jpg.part").write_bytes(image_bytes(6000))
    (root / ".hidden.jpg").write_bytes(image_bytes(6001))
    return root, expected


def test_scan_registers_exactly_the_images_and_records_errors(
    catalog: Catalog, tree: tuple[Path, dict[str, bytes]]
) -> None:
    root, expected = tree
    source = add_folder(catalog, root)
    report = scan(catalog, source)
    assert report.status == "ok"
    assert report.counts.added == 1000
    assert report.counts.errors == 3
    assert sorted(report.counts.error_paths) == ["cut.jpg", "empty.jpg", "fake.png"]
    assert counts_in_db(catalog) == (1000, 1000)
    with catalog.read() as conn:
        errors = dict(cache_errors(conn, source.id))
        assets = list_assets(conn, limit=2000)
    assert "truncated JPEG" in errors["cut.jpg"]
    assert "empty" in errors["empty.jpg"]
    assert {a.origins[0].remote_id: a.hash for a in assets} == {
        rel: hash_bytes(data) for rel, data in expected.items()
    }
    sample = next(a for a in assets if a.origins[0].remote_id.endswith(".png"))
    assert (sample.format, sample.width, sample.height) == ("PNG", 32, 24)
    assert {a.format for a in assets} == {"JPEG", "PNG", "GIF", "WEBP", "TIFF"}

    again = scan(catalog, source)
    assert again.counts.as_dict() | {"unchanged": 0, "errors": 0, "hashed": 0} == {
        "added": 0,
        "updated": 0,
        "moved": 0,
        "missing": 0,
        "unchanged": 0,
        "errors": 0,
        "deferred": 0,
        "hashed": 0,
    }
    assert again.counts.unchanged == 1000
    assert again.counts.hashed == 3  # only the errored files are retried
    assert counts_in_db(catalog) == (1000, 1000)


def test_errored_file_is_retried_and_registered_once_fixed(
    sqlite_catalog: Catalog, tmp_path: Path
) -> None:
    root = tmp_path / "sd"
    data = image_bytes(1)
    (root).mkdir()
    (root / "late.jpg").write_bytes(data[:40])
    source = add_folder(sqlite_catalog, root)
    assert scan(sqlite_catalog, source).counts.errors == 1
    (root / "late.jpg").write_bytes(data)
    report = scan(sqlite_catalog, source)
    assert (report.counts.added, report.counts.errors) == (1, 0)
    with sqlite_catalog.read() as conn:
        assert cache_errors(conn, source.id) == []


def test_move_keeps_asset_id(catalog: Catalog, tmp_path: Path) -> None:
    root = tmp_path / "sd"
    write_image(root / "a" / "one.jpg", 1)
    write_image(root / "a" / "two.jpg", 2)
    source = add_folder(catalog, root)
    scan(catalog, source)
    before = asset_by_path(catalog, source, "a/one.jpg")
    (root / "b").mkdir()
    os.rename(root / "a" / "one.jpg", root / "b" / "renamed.jpg")
    report = scan(catalog, source)
    assert (report.counts.moved, report.counts.added, report.counts.missing) == (1, 0, 0)
    assert asset_by_path(catalog, source, "b/renamed.jpg") == before
    with catalog.read() as conn:
        asset = get_asset(conn, before)
    assert asset.status == AssetStatus.PRESENT
    assert [o.remote_id for o in asset.origins] == ["b/renamed.jpg"]


def test_move_across_storage_dirs_keeps_asset_id(catalog: Catalog, tmp_path: Path) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    write_image(first / "x.jpg", 1)
    write_image(first / "stay.jpg", 2)
    write_image(second / "other.jpg", 3)
    a, b = add_folder(catalog, first), add_folder(catalog, second)
    scan(catalog, a)
    scan(catalog, b)
    asset_id = asset_by_path(catalog, a, "x.jpg")
    shutil.move(first / "x.jpg", second / "moved.jpg")
    assert scan(catalog, a).counts.missing == 1
    report = scan(catalog, b)
    assert report.counts.moved == 1
    assert asset_by_path(catalog, b, "moved.jpg") == asset_id
    with catalog.read() as conn:
        assert get_asset(conn, asset_id).status == AssetStatus.PRESENT


def test_duplicate_is_one_asset_with_two_origins(catalog: Catalog, tmp_path: Path) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    data = write_image(first / "a.jpg", 7)
    (first / "copy").mkdir()
    (first / "copy" / "a-again.jpg").write_bytes(data)
    second.mkdir()
    (second / "elsewhere.jpg").write_bytes(data)
    a, b = add_folder(catalog, first), add_folder(catalog, second)
    scan(catalog, a)
    scan(catalog, b)
    asset_id = asset_by_path(catalog, a, "a.jpg")
    assert asset_by_path(catalog, a, "copy/a-again.jpg") == asset_id
    assert asset_by_path(catalog, b, "elsewhere.jpg") == asset_id
    assert counts_in_db(catalog) == (1, 3)


def test_deleted_file_goes_missing_and_comes_back(catalog: Catalog, tmp_path: Path) -> None:
    root = tmp_path / "sd"
    data = write_image(root / "gone.jpg", 1)
    write_image(root / "stays.jpg", 2)
    source = add_folder(catalog, root)
    scan(catalog, source)
    asset_id = asset_by_path(catalog, source, "gone.jpg")
    (root / "gone.jpg").unlink()
    assert scan(catalog, source).counts.missing == 1
    with catalog.read() as conn:
        assert get_asset(conn, asset_id).status == AssetStatus.MISSING
    (root / "gone.jpg").write_bytes(data)
    scan(catalog, source)
    with catalog.read() as conn:
        assert get_asset(conn, asset_id).status == AssetStatus.PRESENT
    assert counts_in_db(catalog) == (2, 2)


def test_changed_content_is_updated_and_old_asset_kept(catalog: Catalog, tmp_path: Path) -> None:
    root = tmp_path / "sd"
    write_image(root / "edit.jpg", 1)
    source = add_folder(catalog, root)
    scan(catalog, source)
    old = asset_by_path(catalog, source, "edit.jpg")
    write_image(root / "edit.jpg", 2)
    report = scan(catalog, source)
    assert report.counts.updated == 1
    new = asset_by_path(catalog, source, "edit.jpg")
    assert new != old
    with catalog.read() as conn:
        assert get_asset(conn, old).status == AssetStatus.MISSING
        assert get_asset(conn, new).status == AssetStatus.PRESENT


@pytest.mark.parametrize("how", ["removed", "emptied"])
def test_unmounted_root_goes_offline_and_marks_nothing_missing(
    catalog: Catalog, tmp_path: Path, how: str
) -> None:
    root = tmp_path / "mnt"
    for i in range(5):
        write_image(root / f"{i}.jpg", i)
    source = add_folder(catalog, root)
    scan(catalog, source)
    parked = tmp_path / "parked"
    if how == "removed":
        root.rename(parked)
    else:
        parked.mkdir()
        for entry in list(root.iterdir()):
            entry.rename(parked / entry.name)
    report = scan(catalog, source)
    assert report.status == "offline"
    assert report.counts.missing == 0
    with catalog.read() as conn:
        assert all(a.status == AssetStatus.PRESENT for a in list_assets(conn))
        status = conn.execute(
            select(schema.sources.c.status).where(schema.sources.c.id == source.id)
        ).scalar_one()
    assert status == "offline"
    if how == "removed":
        parked.rename(root)
    else:
        for entry in list(parked.iterdir()):
            entry.rename(root / entry.name)
    back = scan(catalog, source)
    assert (back.status, back.counts.unchanged, back.counts.missing) == ("ok", 5, 0)


def test_file_deleted_between_listing_and_hashing(sqlite_catalog: Catalog, tmp_path: Path) -> None:
    root = tmp_path / "sd"
    write_image(root / "keep.jpg", 1)
    write_image(root / "vanish.jpg", 2)
    source = add_folder(sqlite_catalog, root)
    job = FolderScan(sqlite_catalog, source)
    walked = job.walk()
    assert {f.rel_path for f in walked.files} == {"keep.jpg", "vanish.jpg"}
    (root / "vanish.jpg").unlink()
    assert isinstance(
        examine(root, next(f for f in walked.files if f.rel_path == "vanish.jpg")), Gone
    )
    report = job.run(walked)
    assert (report.status, report.counts.added, report.counts.errors) == ("ok", 1, 0)
    assert counts_in_db(sqlite_catalog) == (1, 1)


def test_file_growing_while_hashed_is_deferred_until_stable(
    sqlite_catalog: Catalog, tmp_path: Path
) -> None:
    root = tmp_path / "sd"
    data = image_bytes(3, "PNG", (200, 200))
    root.mkdir()
    (root / "growing.png").write_bytes(data[:100])
    source = add_folder(sqlite_catalog, root)
    job = FolderScan(sqlite_catalog, source)
    walked = job.walk()
    with open(root / "growing.png", "ab") as handle:  # the writer goes on after the listing
        handle.write(data[100:])
    assert isinstance(examine(root, walked.files[0]), Unstable)
    report = job.run(walked)
    assert (report.counts.added, report.counts.deferred, report.counts.errors) == (0, 1, 0)
    assert counts_in_db(sqlite_catalog) == (0, 0)
    report = scan(sqlite_catalog, source)
    assert report.counts.added == 1
    with sqlite_catalog.read() as conn:
        assert [a.hash for a in list_assets(conn)] == [hash_bytes(data)]


def test_walk_does_not_follow_symlink_loops(tmp_path: Path) -> None:
    root = tmp_path / "sd"
    write_image(root / "a" / "x.jpg", 1)
    (root / "a" / "loop").symlink_to(root)
    (root / "self").symlink_to("self")
    walked = walk(root)
    assert [f.rel_path for f in walked.files] == ["a/x.jpg"]
    assert walked.symlinks == 2


def test_truncated_formats_are_errors(tmp_path: Path) -> None:
    root = tmp_path / "sd"
    root.mkdir()
    for fmt, ext in (("PNG", "png"), ("GIF", "gif"), ("WEBP", "webp"), ("JPEG", "jpg")):
        data = image_bytes(9, fmt, (80, 80))
        (root / f"cut.{ext}").write_bytes(data[: len(data) - 20])
    outcomes = [examine(root, f) for f in walk(root).files]
    assert all(isinstance(o, FileError) for o in outcomes), outcomes
    assert all("truncated" in o.error for o in outcomes if isinstance(o, FileError))


def test_on_demand_discovery_finds_a_moved_file(sqlite_catalog: Catalog, tmp_path: Path) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    data = write_image(first / "pic.jpg", 4)
    write_image(first / "other.jpg", 5)
    write_image(second / "seed.jpg", 6)
    a = add_folder(sqlite_catalog, first)
    add_folder(sqlite_catalog, second)
    scan(sqlite_catalog, a)
    asset_id = asset_by_path(sqlite_catalog, a, "pic.jpg")
    (first / "pic.jpg").unlink()
    (second / "deep" / "er").mkdir(parents=True)
    (second / "deep" / "er" / "pic.jpg").write_bytes(data)  # never scanned there
    found = find_asset_file(sqlite_catalog, asset_id)
    assert found == second / "deep" / "er" / "pic.jpg"
    with sqlite_catalog.read() as conn:
        asset = get_asset(conn, asset_id)
    assert asset.status == AssetStatus.PRESENT
    assert {o.remote_id for o in asset.origins if o.status == "present"} == {"deep/er/pic.jpg"}


def test_on_demand_discovery_answers_none_when_truly_gone(
    sqlite_catalog: Catalog, tmp_path: Path
) -> None:
    root = tmp_path / "one"
    write_image(root / "pic.jpg", 4)
    write_image(root / "keep.jpg", 5)
    source = add_folder(sqlite_catalog, root)
    scan(sqlite_catalog, source)
    asset_id = asset_by_path(sqlite_catalog, source, "pic.jpg")
    (root / "pic.jpg").unlink()
    write_image(root / "sub" / "pic.jpg", 99)  # same name, other bytes: not it
    assert find_asset_file(sqlite_catalog, asset_id) is None


def test_heic_avif_and_videos_are_registered(sqlite_catalog: Catalog, tmp_path: Path) -> None:
    import io

    import pillow_heif
    from PIL import Image

    pillow_heif.register_heif_opener()
    root = tmp_path / "sd"
    root.mkdir()
    for fmt, name in (("HEIF", "phone.heic"), ("AVIF", "web.avif")):
        out = io.BytesIO()
        Image.new("RGB", (40, 30), (1, 2, 3)).save(out, fmt)
        (root / name).write_bytes(out.getvalue())
    mp4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + os.urandom(64)
    (root / "clip.mp4").write_bytes(mp4)
    (root / "fake.mov").write_bytes(b"this is not a movie")
    source = add_folder(sqlite_catalog, root)
    report = scan(sqlite_catalog, source)
    assert (report.counts.added, report.counts.error_paths) == (3, ["fake.mov"])
    with sqlite_catalog.read() as conn:
        found = {
            a.origins[0].remote_id: (a.kind, a.format, a.width, a.height) for a in list_assets(conn)
        }
    assert found == {
        "phone.heic": ("image", "HEIF", 40, 30),
        "web.avif": ("image", "AVIF", 40, 30),
        "clip.mp4": ("video", "MP4", None, None),
    }


def test_watcher_batch_waits_while_a_scan_holds_the_source(
    sqlite_catalog: Catalog, tmp_path: Path
) -> None:
    from gallerysync.sync.folder import apply_paths

    root = tmp_path / "sd"
    write_image(root / "seed.jpg", 1)
    source = add_folder(sqlite_catalog, root)
    write_image(root / "new.jpg", 2)
    with sqlite_catalog.source_lock(source.id):
        counts = apply_paths(sqlite_catalog, source, ["new.jpg"])
    assert counts.deferred_paths == ["new.jpg"] and counts.added == 0
    assert counts_in_db(sqlite_catalog) == (0, 0)
    assert apply_paths(sqlite_catalog, source, ["new.jpg"]).added == 1


def test_watcher_paths_through_symlinks_or_fifos_are_refused(
    sqlite_catalog: Catalog, tmp_path: Path
) -> None:
    from gallerysync.sync.folder import apply_paths

    root, outside = tmp_path / "sd", tmp_path / "outside"
    write_image(root / "seed.jpg", 1)
    write_image(outside / "secret.png", 2)
    (root / "link").symlink_to(outside)
    os.mkfifo(root / "evil.png")
    source = add_folder(sqlite_catalog, root)
    counts = apply_paths(
        sqlite_catalog, source, ["link/secret.png", "link", "evil.png", "../outside/secret.png"]
    )
    assert (counts.added, counts.errors) == (0, 0)
    assert counts_in_db(sqlite_catalog) == (0, 0)
    report = scan(sqlite_catalog, source)  # the full scan does not block on the FIFO either
    assert (report.counts.added, report.counts.errors) == (1, 0)


def test_file_back_before_the_sweep_is_not_marked_missing(catalog: Catalog, tmp_path: Path) -> None:
    root = tmp_path / "sd"
    data = write_image(root / "flaky.jpg", 1)
    write_image(root / "other.jpg", 2)
    source = add_folder(catalog, root)
    scan(catalog, source)
    (root / "flaky.jpg").unlink()
    job = FolderScan(catalog, source)
    walked = job.walk()
    assert walked.vanished == {"flaky.jpg"}
    (root / "flaky.jpg").write_bytes(data)  # an editor's save replaced it meanwhile
    assert job.run(walked).counts.missing == 0
    with catalog.read() as conn:
        assert all(a.status == AssetStatus.PRESENT for a in list_assets(conn))
