"""Settings: one declared table drives defaults, environment variables, validation and docs.

Why a table: the CLI, the docs (`docs/operations.md`) and a meta-test all read `SETTINGS`, so a
setting cannot exist without a default, an environment variable and a help text.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import platformdirs

from gallerysync.errors import ConfigError

__all__ = ["SETTINGS", "Setting", "Settings", "load_settings", "resolve_home"]


@dataclass(frozen=True)
class Setting:
    """One row of the settings table."""

    name: str
    default: str
    env: str
    help: str
    parse: Callable[[str], Any]


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError("must be greater than 0")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must be 0 or more")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be 1 or more")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError("must be between 0 and 65535")
    return value


def _database_url(text: str) -> str:
    if not text:
        return ""
    if not text.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:", "postgres:")):
        raise ValueError("must start with sqlite: or postgresql:")
    return text


def _on_off(text: str) -> bool:
    value = text.lower()
    if value not in {"on", "off"}:
        raise ValueError("must be on or off")
    return value == "on"


def _log_level(text: str) -> str:
    level = text.upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
    return level


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "database_url",
        "",
        "GALLERYSYNC_DATABASE_URL",
        "Catalog database. Empty: a SQLite file `catalog.sqlite3` in the home. "
        "`postgresql://user@host/db` uses PostgreSQL.",
        _database_url,
    ),
    Setting(
        "host",
        "127.0.0.1",
        "GALLERYSYNC_HOST",
        "Address `serve` binds to. A non-loopback address is refused unless `GALLERYSYNC_AUTH=on`.",
        str,
    ),
    Setting("port", "8765", "GALLERYSYNC_PORT", "TCP port `serve` listens on.", _port),
    Setting(
        "auth",
        "off",
        "GALLERYSYNC_AUTH",
        "`on`: every API request needs a bearer token or a session cookie (`gallerysync token "
        "create`). `off`: requests without credentials act as the local owner (loopback only).",
        _on_off,
    ),
    Setting(
        "settle_seconds",
        "2.0",
        "GALLERYSYNC_SETTLE_SECONDS",
        "A watched file is registered only after its size and mtime were stable this long.",
        _positive_float,
    ),
    Setting(
        "hash_workers",
        "0",
        "GALLERYSYNC_HASH_WORKERS",
        "Threads that hash files during a scan; 0 means one per CPU core.",
        _non_negative_int,
    ),
    Setting(
        "scan_batch_size",
        "500",
        "GALLERYSYNC_SCAN_BATCH_SIZE",
        "Files registered per catalog transaction during a scan (a killed scan resumes from "
        "the last committed batch).",
        _positive_int,
    ),
    Setting(
        "job_workers",
        "1",
        "GALLERYSYNC_JOB_WORKERS",
        "Background job workers (thumbnails) that `serve` runs.",
        _non_negative_int,
    ),
    Setting(
        "job_max_attempts",
        "5",
        "GALLERYSYNC_JOB_MAX_ATTEMPTS",
        "Attempts before a job is marked failed.",
        _positive_int,
    ),
    Setting(
        "heartbeat_seconds",
        "15",
        "GALLERYSYNC_HEARTBEAT_SECONDS",
        "Seconds between heartbeat comments on an idle change stream (each also re-checks "
        "the feed head, so a lost wake-up heals).",
        _positive_float,
    ),
    Setting(
        "tombstone_retention_days",
        "30",
        "GALLERYSYNC_TOMBSTONE_RETENTION_DAYS",
        "How long deletions stay in the change feed. A reader further behind must reset.",
        _positive_float,
    ),
    Setting(
        "remote_sync_seconds",
        "300",
        "GALLERYSYNC_REMOTE_SYNC_SECONDS",
        "`serve` runs a smart sync of every remote source this often (and whenever the source "
        "hints at a change).",
        _positive_float,
    ),
    Setting(
        "remote_full_sync_hours",
        "24",
        "GALLERYSYNC_REMOTE_FULL_SYNC_HOURS",
        "`serve` reconciles each remote source with a full sync this often.",
        _positive_float,
    ),
    Setting(
        "download_concurrency",
        "8",
        "GALLERYSYNC_DOWNLOAD_CONCURRENCY",
        "Parallel downloads per remote source (`download --concurrency` overrides it).",
        _positive_int,
    ),
    Setting(
        "sweep_max_fraction",
        "0.5",
        "GALLERYSYNC_SWEEP_MAX_FRACTION",
        "A sync never marks more than this fraction of a source's items deleted without `--force`.",
        _positive_float,
    ),
    Setting(
        "retry_base_seconds",
        "0.5",
        "GALLERYSYNC_RETRY_BASE_SECONDS",
        "First backoff before retrying a remote request (doubles per attempt, with jitter; "
        "a server's Retry-After is honoured).",
        _positive_float,
    ),
    Setting(
        "upload_max_bytes",
        str(2 << 30),
        "GALLERYSYNC_UPLOAD_MAX_BYTES",
        "Largest file `POST /api/assets` accepts; a bigger upload is refused with 413 before "
        "its body is read.",
        _positive_int,
    ),
    Setting(
        "push_concurrency",
        "4",
        "GALLERYSYNC_PUSH_CONCURRENCY",
        "Parallel uploads of `gallerysync push` (`--concurrency` overrides it).",
        _positive_int,
    ),
    Setting("log_level", "INFO", "GALLERYSYNC_LOG_LEVEL", "Logging level.", _log_level),
)


@dataclass(frozen=True)
class Settings:
    """Validated settings; build with `load_settings`."""

    home: Path
    database_url: str
    host: str
    port: int
    auth: bool
    settle_seconds: float
    hash_workers: int
    scan_batch_size: int
    job_workers: int
    job_max_attempts: int
    heartbeat_seconds: float
    tombstone_retention_days: float
    remote_sync_seconds: float
    remote_full_sync_hours: float
    download_concurrency: int
    sweep_max_fraction: float
    retry_base_seconds: float
    upload_max_bytes: int
    push_concurrency: int
    log_level: str

    @property
    def catalog_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the home."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home / 'catalog.sqlite3'}"

    @property
    def blobs_dir(self) -> Path:
        return self.home / "blobs"

    @property
    def effective_hash_workers(self) -> int:
        return self.hash_workers or (os.cpu_count() or 1)


def resolve_home(cli_home: str | Path | None, environ: Mapping[str, str] | None = None) -> Path:
    """`--home`, else `GALLERYSYNC_HOME`, else the platform data dir (XDG on Linux)."""
    env = os.environ if environ is None else environ
    if cli_home:
        return Path(cli_home).expanduser().resolve()
    if env.get("GALLERYSYNC_HOME"):
        return Path(env["GALLERYSYNC_HOME"]).expanduser().resolve()
    return Path(platformdirs.user_data_dir("gallerysync", appauthor=False))


def load_settings(
    home: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, str] | None = None,
) -> Settings:
    """Read every setting from overrides, then the environment, then its default.

    A value that does not parse raises `ConfigError` naming the setting and its variable.
    """
    env = os.environ if environ is None else environ
    given = dict(overrides or {})
    values: dict[str, Any] = {"home": resolve_home(home, env)}
    for setting in SETTINGS:
        raw = given.get(setting.name, env.get(setting.env, setting.default))
        try:
            values[setting.name] = setting.parse(raw.strip())
        except ValueError as exc:
            raise ConfigError(
                f"invalid value {raw!r} for setting {setting.name} ({setting.env}): {exc}"
            ) from exc
    names = {f.name for f in fields(Settings)}
    assert names == set(values), names ^ set(values)
    return Settings(**values)
