"""The local blob store: atomic, verified writes; temp clean-up that spares live writers; gc."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from gallerysync.blobs.hashing import content_name, hash_bytes, is_hash
from gallerysync.blobs.local import BlobWriter, LocalBlobStore
from gallerysync.catalog import Catalog
from gallerysync.errors import BlobIntegrityError, InvalidInputError
from gallerysync.maintenance import collect_garbage
from gallerysync.sync.folder import FolderScan, add_folder
from gallerysync.sync.thumbnails import make_asset_thumbnail
from tests.helpers import image_bytes, write_image


def test_put_stream_is_content_addressed_and_idempotent(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    data = os.urandom(3 << 20)
    chunks = [data[i : i + 65536] for i in range(0, len(data), 65536)]
    stored = store.put_stream(chunks, expected_hash=hash_bytes(data), expected_size=len(data))
    assert (stored.hash, stored.size) == (hash_bytes(data), len(data))
    assert store.put_bytes(data) == stored
    assert list(store.iter_hashes()) == [stored.hash]
    with store.open(stored.hash) as handle:
        assert handle.read() == data
    assert store.verify(stored.hash)
    assert list(store.tmp.iterdir()) == []


def test_blobs_live_one_directory_level_down(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    stored = store.put_bytes(b"laid out")
    assert store.local_path(stored.hash) == store.root / stored.hash[:2] / stored.hash
    assert (store.root / "layout").read_text() == "<2 hex>/<64 hex>\n"
    assert store.migrated == 0


def _legacy_blob(root: Path, data: bytes) -> str:
    """A blob where gallerysync before the one-level layout put it: `ab/cd/<hash>`."""
    digest = hash_bytes(data)
    leaf = root / digest[:2] / digest[2:4]
    leaf.mkdir(parents=True, exist_ok=True)
    (leaf / digest).write_bytes(data)
    return digest


def test_a_two_level_store_is_moved_into_the_layout_on_open(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    old = {_legacy_blob(root, os.urandom(1000)): i for i in range(40)}
    stranger = root / "ab" / "cd" / "notes.txt"  # not a blob: left where it is
    stranger.parent.mkdir(parents=True, exist_ok=True)
    stranger.write_text("mine")

    store = LocalBlobStore(root)

    assert store.migrated == len(old)
    assert sorted(store.iter_hashes()) == sorted(old)
    for digest in old:
        assert store.local_path(digest) == root / digest[:2] / digest
        assert store.verify(digest)
    leaves = [p for p in root.glob("??/??") if p.is_dir()]
    assert leaves == [stranger.parent]  # the emptied leaf directories are gone
    assert stranger.read_text() == "mine"
    assert LocalBlobStore(root).migrated == 0  # the marker says it is done


def test_a_migration_cut_short_is_finished_by_the_next_open(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    first = LocalBlobStore(root)
    moved = first.put_bytes(b"already in the new place").hash
    (root / "layout").unlink()  # as if killed after moving some blobs, before the marker
    left = _legacy_blob(root, b"still in the old place")

    store = LocalBlobStore(root)

    assert store.migrated == 1
    assert sorted(store.iter_hashes()) == sorted([moved, left])
    with store.open(left) as handle:
        assert handle.read() == b"still in the old place"


def test_bad_hash_or_size_stores_nothing(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    with pytest.raises(BlobIntegrityError, match="announced"):
        store.put_stream([b"abc"], expected_hash=hash_bytes(b"abd"))
    with pytest.raises(BlobIntegrityError):
        store.put_stream([b"abc", b"def"], expected_size=4)
    with pytest.raises(BlobIntegrityError):
        store.put_stream([b"ab"], expected_size=4)

    def broken() -> Iterator[bytes]:
        yield b"partial"
        raise ConnectionResetError("peer went away")

    with pytest.raises(ConnectionResetError):
        store.put_stream(broken())
    assert list(store.iter_hashes()) == []
    assert list(store.tmp.iterdir()) == []


def test_clean_temp_removes_dead_writers_only(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    (store.tmp / "put-dead").write_bytes(b"left by a killed process")
    live = store.tmp / "put-live"
    fd = os.open(live, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        assert store.clean_temp() == 1
        assert live.exists() and not (store.tmp / "put-dead").exists()
    finally:
        os.close(fd)


def _staged(store: LocalBlobStore, data: bytes) -> BlobWriter:
    """An in-memory writer taken as far as the group commit takes it before the flush."""
    writer = store.open_writer(expected_size=len(data), in_memory=True)
    writer.write(data)
    writer.finish(expected_hash=hash_bytes(data))
    writer.stage()
    return writer


def test_staged_bytes_have_no_name_until_published(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    assert store.unnamed_temp, "O_TMPFILE + linkat should work on Linux with /proc"
    data = os.urandom(300_000)
    writer = _staged(store, data)
    # written, yet nothing in tmp/ and no blob: a crash here leaves no file at all
    assert store.temp_files() == [] and list(store.iter_hashes()) == []
    store.sync()
    assert writer.publish().hash == hash_bytes(data)
    with store.open(hash_bytes(data)) as handle:
        assert handle.read() == data
    # the same bytes staged again: publishing keeps the one blob, intact
    assert _staged(store, data).publish().hash == hash_bytes(data)
    assert list(store.iter_hashes()) == [hash_bytes(data)] and store.verify(hash_bytes(data))
    # staged, then dropped (a failed batch): no trace
    other = os.urandom(1000)
    _staged(store, other).abort()
    assert not store.exists(hash_bytes(other)) and store.temp_files() == []


def test_staging_falls_back_to_named_temp_files(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    store.unnamed_temp = False  # a file system without O_TMPFILE
    data = os.urandom(5000)
    writer = _staged(store, data)
    assert len(store.temp_files()) == 1 and list(store.iter_hashes()) == []
    store.sync()
    writer.publish()
    assert store.temp_files() == [] and list(store.iter_hashes()) == [hash_bytes(data)]


def test_paths_are_never_built_from_untrusted_text(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    for bad in ("../../etc/passwd", "a" * 63, "A" * 64, "/" + "a" * 63):
        with pytest.raises(InvalidInputError):
            store.open(bad)
    assert not is_hash("g" * 64)
    assert content_name("ab" * 32, ".JPG") == "ab" * 16 + ".jpg"


def test_gc_removes_only_unreferenced_blobs(sqlite_catalog: Catalog, tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    root = tmp_path / "sd"
    root.mkdir()
    (root / "a.jpg").write_bytes(image_bytes(1, "JPEG", (600, 400)))
    write_image(root / "b.png", 2)
    source = add_folder(sqlite_catalog, root)
    FolderScan(sqlite_catalog, source).run()
    from gallerysync.catalog.assets import list_assets

    with sqlite_catalog.read() as conn:
        assets = list_assets(conn)
    thumbs = {make_asset_thumbnail(sqlite_catalog, store, a.id) for a in assets}
    orphan = store.put_bytes(b"nobody references me")
    fresh = collect_garbage(sqlite_catalog, store, dry_run=False)
    assert fresh.removed == [] and store.exists(orphan.hash)  # too young: may be mid-commit
    dry = collect_garbage(sqlite_catalog, store, dry_run=True, grace_seconds=0)
    assert dry.removed == [orphan.hash] and store.exists(orphan.hash)
    done = collect_garbage(sqlite_catalog, store, dry_run=False, grace_seconds=0)
    assert done.removed == [orphan.hash]
    assert set(store.iter_hashes()) == thumbs
