"""The CLI contract, run as a user would: real subprocesses on a real home and folder."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import cli_json, run_cli, write_image


def test_source_sync_assets_inspect_gc(tmp_path: Path) -> None:
    home, root = tmp_path / "home", tmp_path / "pics"
    data = write_image(root / "a.jpg", 1)
    write_image(root / "sub" / "b.png", 2)
    (root / "sub" / "dup.jpg").write_bytes(data)
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")

    added = cli_json(home, "source", "add", "folder", str(root), "--name", "pics")
    assert added["name"] == "pics" and (root / "SD_ID").read_text().strip() == added["id"]
    listed = cli_json(home, "source", "list")
    assert [s["name"] for s in listed] == ["pics"] and listed[0]["status"] == "ok"

    (report,) = cli_json(home, "sync")
    assert {
        k: report[k]
        for k in ("source", "added", "updated", "moved", "missing", "unchanged", "errors")
    } == {
        "source": "pics",
        "added": 3,
        "updated": 0,
        "moved": 0,
        "missing": 0,
        "unchanged": 0,
        "errors": 1,
    }
    assert isinstance(report["seconds"], float)
    (again,) = cli_json(home, "sync", "pics", "--full")
    assert (again["added"], again["unchanged"], again["hashed"]) == (0, 3, 1)

    assets = cli_json(home, "assets", "list", "--source", "pics")
    assert len(assets) == 2
    dup = next(a for a in assets if len(a["origins"]) == 2)
    assert sorted(o["path"] for o in dup["origins"]) == ["a.jpg", "sub/dup.jpg"]
    shown = cli_json(home, "assets", "show", dup["id"])
    assert shown["hash"] == dup["hash"] and shown["format"] == "JPEG"
    assert cli_json(home, "assets", "list", "--status", "missing") == []

    report = cli_json(home, "inspect")
    (sd,) = report["storage_dirs"]
    assert (sd["files_on_disk"], sd["registered"], sd["unregistered"], sd["errored"]) == (
        4,
        3,
        0,
        1,
    )
    assert sd["errors"][0]["path"] == "broken.jpg"
    assert sd["id_file"]["status"] == "ok"
    assert len(report["duplicate_groups"]) == 1
    assert sd["duplicate_groups"] == 1
    assert report["jobs"]["pending"] == 1  # one thumbnail job (both images) waits for `serve`

    gc = cli_json(home, "gc", "--dry-run")
    assert gc["removed"] == 0

    removed = cli_json(home, "source", "remove", "pics")
    assert removed["assets_now_missing"] == 2
    assert cli_json(home, "source", "list") == []


def test_errors_are_clear(tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = run_cli(home, "source", "add", "folder", str(tmp_path / "nope"), check=False)
    assert result.returncode != 0 and "is not a directory" in result.stderr
    result = run_cli(home, "sync", "unknown", check=False)
    assert result.returncode != 0 and "no source named 'unknown'" in result.stderr
    result = run_cli(home, "assets", "show", "nope", check=False)
    assert result.returncode != 0 and "no asset with id nope" in result.stderr
    result = run_cli(home, "serve", "--host", "0.0.0.0", check=False)
    assert result.returncode == 2 and "refusing to bind 0.0.0.0" in result.stderr
    bad = run_cli(home, "source", "list", check=False, env={"GALLERYSYNC_SETTLE_SECONDS": "-1"})
    assert bad.returncode == 2
    assert "settle_seconds (GALLERYSYNC_SETTLE_SECONDS)" in bad.stderr


def test_every_command_has_help(tmp_path: Path) -> None:
    for command in (
        ["source", "add"],
        ["source", "list"],
        ["source", "remove"],
        ["sync"],
        ["assets", "list"],
        ["assets", "show"],
        ["inspect"],
        ["gc"],
        ["serve"],
        ["import"],
    ):
        result = run_cli(tmp_path, *command, "--help")
        assert "Usage:" in result.stdout and len(result.stdout) > 100, command


def test_home_from_environment(tmp_path: Path) -> None:
    home = tmp_path / "envhome"
    root = tmp_path / "pics"
    write_image(root / "a.jpg", 1)
    import os
    import subprocess
    import sys

    env = {**os.environ, "GALLERYSYNC_HOME": str(home)}
    subprocess.run(
        [sys.executable, "-m", "gallerysync", "source", "add", "folder", str(root)],
        env=env,
        check=True,
        capture_output=True,
    )
    assert (home / "catalog.sqlite3").is_file()


def test_import_writes_content_addressed_names(tmp_path: Path) -> None:
    from gallerysync.blobs.hashing import hash_bytes

    home, root, outside = tmp_path / "home", tmp_path / "sd", tmp_path / "camera"
    write_image(root / "existing.jpg", 1)
    data = write_image(outside / "IMG_0001.JPG", 2)
    (outside / "copy.jpg").write_bytes(data)
    (outside / "cut.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    run_cli(home, "source", "add", "folder", str(root), "--name", "sd")
    result = run_cli(
        home,
        "import",
        str(outside / "IMG_0001.JPG"),
        str(outside / "copy.jpg"),
        str(outside / "cut.png"),
        "--to",
        "sd",
        "--json",
        check=False,
    )
    assert result.returncode == 1  # one file was refused
    import json

    rows = json.loads(result.stdout)
    name = hash_bytes(data)[:32] + ".jpg"
    assert [(r["status"], r["rel_path"]) for r in rows] == [
        ("copied", name),
        ("already-there", name),
        ("error", None),
    ]
    assert "truncated PNG" in rows[2]["detail"]
    assert (root / name).read_bytes() == data
    assert sorted(p.name for p in root.iterdir()) == sorted(["SD_ID", "existing.jpg", name])
    assets = cli_json(home, "assets", "list")
    assert [o["path"] for a in assets for o in a["origins"]] == [name]  # existing.jpg unscanned
    png = write_image(outside / "export.dat", 3, "PNG")  # a PNG under a name scans ignore
    (row,) = cli_json(home, "import", str(outside / "export.dat"), "--to", "sd")
    assert row["rel_path"] == hash_bytes(png)[:32] + ".png"
    assert len(cli_json(home, "assets", "list")) == 2


def test_cli_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    """The same CLI contract with GALLERYSYNC_DATABASE_URL pointing at PostgreSQL."""
    url = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    env = {"GALLERYSYNC_DATABASE_URL": url}
    home, root = tmp_path / "home", tmp_path / "pics"
    for i in range(30):
        write_image(root / f"d{i % 3}" / f"{i}.jpg", i)
    run_cli(home, "source", "add", "folder", str(root), env=env)
    (report,) = cli_json(home, "sync", env=env)
    assert (report["added"], report["errors"]) == (30, 0)
    (root / "d0" / "0.jpg").rename(root / "moved.jpg")
    (root / "d1" / "1.jpg").unlink()
    (report,) = cli_json(home, "sync", env=env)
    assert (report["moved"], report["missing"], report["unchanged"]) == (1, 1, 28)
    assert not (home / "catalog.sqlite3").exists()
    inspect = cli_json(home, "inspect", env=env)
    assert inspect["assets"] == {"present": 29, "missing": 1}
