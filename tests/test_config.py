"""Settings: one table, validated at start-up, with a message that names the bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from gallerysync.config import SETTINGS, load_settings, resolve_home
from gallerysync.errors import ConfigError


def test_defaults_and_home_resolution(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, environ={})
    assert settings.home == tmp_path.resolve()
    assert settings.catalog_url == f"sqlite:///{tmp_path.resolve() / 'catalog.sqlite3'}"
    assert (settings.host, settings.port) == ("127.0.0.1", 8765)
    assert resolve_home(None, {"GALLERYSYNC_HOME": str(tmp_path / "x")}) == tmp_path / "x"
    assert resolve_home(None, {}).name == "gallerysync"  # the platform data dir


@pytest.mark.parametrize(
    ("env", "value"),
    [
        ("GALLERYSYNC_PORT", "70000"),
        ("GALLERYSYNC_SETTLE_SECONDS", "0"),
        ("GALLERYSYNC_HASH_WORKERS", "-2"),
        ("GALLERYSYNC_DATABASE_URL", "mysql://x"),
        ("GALLERYSYNC_LOG_LEVEL", "LOUD"),
        ("GALLERYSYNC_SCAN_BATCH_SIZE", "many"),
    ],
)
def test_bad_values_name_the_setting(tmp_path: Path, env: str, value: str) -> None:
    with pytest.raises(ConfigError, match=env):
        load_settings(tmp_path, environ={env: value})


def test_every_setting_is_documented() -> None:
    docs = (Path(__file__).parents[1] / "docs" / "operations.md").read_text()
    for setting in SETTINGS:
        assert setting.env in docs, f"{setting.env} is missing from docs/operations.md"
        assert setting.help
