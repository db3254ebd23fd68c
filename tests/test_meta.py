"""Meta-tests: import rules hold, the code is lint- and type-clean, docs cover the CLI."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
SRC = ROOT / "src" / "gallerysync"

# package (path prefix under src/gallerysync) → packages it must never import
FORBIDDEN = {
    "sources": (
        "gallerysync.catalog",
        "gallerysync.sync",
        "gallerysync.runtime",
        "gallerysync.cli",
        "gallerysync.watch.watcher",
    ),
    "watch": ("gallerysync.catalog", "gallerysync.sync", "gallerysync.runtime", "gallerysync.cli"),
    "catalog": (
        "gallerysync.sync",
        "gallerysync.sources",
        "gallerysync.runtime",
        "gallerysync.cli",
        "gallerysync.blobs",
    ),
    "blobs": (
        "gallerysync.sync",
        "gallerysync.sources",
        "gallerysync.catalog",
        "gallerysync.runtime",
        "gallerysync.cli",
    ),
    "sync": ("gallerysync.runtime", "gallerysync.cli", "gallerysync.api"),
    "api": ("gallerysync.runtime", "gallerysync.cli", "sqlalchemy"),
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_import_rules() -> None:
    broken = []
    for package, forbidden in FORBIDDEN.items():
        for path in (SRC / package).rglob("*.py"):
            for name in _imports(path):
                if name.startswith(forbidden):
                    broken.append(f"{path.relative_to(ROOT)} imports {name}")
    assert broken == []


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail(f"{name} is not installed (pip install -e '.[test]')")
    return found


def test_ruff_is_clean() -> None:
    result = subprocess.run(
        [_tool("ruff"), "check", "src", "tests", "bench"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean() -> None:
    result = subprocess.run([_tool("mypy")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_readme_and_docs_cover_the_cli() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "pip install -c requirements.lock -e '.[test]' && .venv/bin/python -m pytest" in readme
    assert ".venv/bin/gallerysync serve" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert ".venv/bin/python -m pytest" in ci and "GALLERYSYNC_REQUIRE_SERVICES=1" in ci
    for command in (
        "source add folder",
        "sync",
        "assets list",
        "assets show",
        "inspect",
        "gc",
        "import",
        "serve",
    ):
        assert f"gallerysync {command}" in readme, command


def test_head_revision_constant_matches_alembic() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from gallerysync.catalog import engine

    config = Config()
    config.set_main_option("script_location", str(engine._MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == engine.HEAD_REVISION
