"""The `gallerysync` command line. Thin: parse, call the runtime, print (text or `--json`)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
import socket
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from gallerysync import __version__
from gallerysync.catalog import Catalog
from gallerysync.catalog.assets import get_asset, list_assets
from gallerysync.catalog.feed import MAX_PAGE, decode_token, encode_token, read_page
from gallerysync.catalog.sources import find_source, get_storage_dir, list_sources, remove_source
from gallerysync.catalog.uploads import UPLOAD_KIND
from gallerysync.catalog.users import (
    add_user,
    create_token,
    get_user,
    list_tokens,
    list_users,
    revoke_token,
)
from gallerysync.config import Settings, load_settings
from gallerysync.domain import Asset, Source
from gallerysync.errors import GallerySyncError, InvalidInputError
from gallerysync.maintenance import collect_garbage, inspect_storage
from gallerysync.runtime import Runtime, check_bind_host, open_runtime, serve
from gallerysync.sync.folder import add_folder, import_files

if TYPE_CHECKING:  # remote sources pull in aiohttp: imported when used (start-up time)
    from gallerysync.push.queue import QueueStatus
    from gallerysync.sync.download import DownloadReport
    from gallerysync.sync.remote import RemoteReport

__all__ = ["app", "main"]

app = typer.Typer(
    help="gallerysync: one catalog of your image folders, kept true.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
source_app = typer.Typer(help="Add, list and remove sources.", no_args_is_help=True)
assets_app = typer.Typer(help="Browse the catalog.", no_args_is_help=True)
user_app = typer.Typer(help="Add and list users (each sees only their own sources).")
token_app = typer.Typer(help="Create, list and revoke API tokens (bearer tokens for the API).")
user_app.info.no_args_is_help = True
token_app.info.no_args_is_help = True
app.add_typer(source_app, name="source")
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")
app.add_typer(assets_app, name="assets")

out = Console()
err = Console(stderr=True, soft_wrap=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)


def _settings(ctx: typer.Context) -> Settings:
    settings = ctx.obj
    assert isinstance(settings, Settings)
    return settings


def _runtime(ctx: typer.Context) -> Runtime:
    return open_runtime(_settings(ctx))


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


@app.callback()
def _main(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            help="Home directory (default: $GALLERYSYNC_HOME, else the platform data dir).",
            file_okay=False,
        ),
    ] = None,
    version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False,
) -> None:
    if version:
        out.print(__version__)
        raise typer.Exit()
    try:
        settings = load_settings(home)
    except GallerySyncError as exc:
        _fail(str(exc), 2)
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("watchfiles").setLevel(logging.WARNING)  # "N changes detected": noise
    ctx.obj = settings


# --- sources -----------------------------------------------------------------------------


@source_app.command("add")
def source_add(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help="Source kind: folder, comfyui, peer, stash.")],
    target: Annotated[
        str, typer.Argument(help="folder: the directory; comfyui/peer/stash: the server's URL.")
    ],
    name: Annotated[
        str | None, typer.Option("--name", help="Name (default: folder name or host).")
    ] = None,
    user: Annotated[
        str | None, typer.Option("--user", help="Owner (default: the local owner, admin).")
    ] = None,
    download: Annotated[
        str,
        typer.Option(
            "--download",
            help="Remote sources: auto (fetch every new image), on-demand (when opened), off.",
        ),
    ] = "auto",
    include_temp: Annotated[
        bool,
        typer.Option(
            "--include-temp", help="comfyui: also catalog temp previews (wiped on restart)."
        ),
    ] = False,
    token: Annotated[
        str | None, typer.Option("--token", help="peer: an API token of the other instance.")
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="STASH_API_KEY",
            help="stash: the API key (Stash: Settings → Security → API Key).",
        ),
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option("--option", help="KEY=VALUE for a plug-in source kind (repeatable)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Add a source. `source add folder PATH` writes an SD_ID file into the folder;
    `source add comfyui URL`, `source add peer URL --token T` and `source add stash URL
    --api-key KEY` add remote servers (nothing is fetched until `sync` or `serve`)."""
    runtime = _runtime(ctx)
    try:
        owner_id = None
        if user is not None:
            with runtime.catalog.read() as conn:
                owner_id = get_user(conn, user).id
        if kind == "folder":
            source = add_folder(runtime.catalog, target, name, owner_id=owner_id)
            with runtime.catalog.read() as conn:
                sd = get_storage_dir(conn, source.id)
        else:
            extra: dict[str, Any] = {}
            if include_temp:
                extra["include_temp"] = True
            if token is not None:
                extra["token"] = token
            if api_key is not None:
                extra["api_key"] = api_key
            for pair in option or []:
                key, eq, value = pair.partition("=")
                if not eq or not key:
                    _fail(f"--option wants KEY=VALUE, not {pair!r}")
                extra[key] = value
            from gallerysync.sync.remote import add_remote_source

            source = add_remote_source(
                runtime.catalog,
                kind,
                target,
                name=name,
                download=download,
                owner_id=owner_id,
                extra=extra,
            )
            sd = None
    except GallerySyncError as exc:
        _fail(str(exc))
    finally:
        runtime.close()
    if sd is None:
        if as_json:
            _print_json(
                {
                    "id": source.id,
                    "name": source.name,
                    "kind": source.kind,
                    "url": source.options.get("url"),
                    "download": source.options.get("download"),
                }
            )
        else:
            out.print(
                f"added {source.kind} source [bold]{source.name}[/bold] ({source.id}) at "
                f"{source.options.get('url')}, download {source.options.get('download')}"
            )
            out.print("  run `gallerysync sync` to fetch it, or `gallerysync serve` to follow it")
        return
    if as_json:
        _print_json(
            {
                "id": source.id,
                "name": source.name,
                "kind": source.kind,
                "root": sd.root,
                "id_file": sd.id_file_status,
                "alias": sd.alias_id,
            }
        )
    else:
        out.print(f"added folder source [bold]{source.name}[/bold] ({source.id}) at {sd.root}")
        if sd.id_file_status != "ok":
            out.print(f"  SD_ID: {sd.id_file_status} — {sd.detail}")
        out.print("  run `gallerysync sync` to scan it, or `gallerysync serve` to scan and watch")


@source_app.command("list")
def source_list(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List sources with their status."""
    runtime = _runtime(ctx)
    try:
        with runtime.catalog.read() as conn:
            rows = []
            for s in list_sources(conn):
                sd = get_storage_dir(conn, s.id) if s.kind == "folder" else None
                rows.append(
                    {
                        "id": s.id,
                        "name": s.name,
                        "kind": s.kind,
                        "status": s.status.value,
                        "status_detail": s.status_detail,
                        "root": sd.root if sd else s.options.get("url"),
                        "download": s.options.get("download") if sd is None else None,
                        "id_file": sd.id_file_status if sd else None,
                        "last_scan_at": sd.last_scan_at if sd else None,
                    }
                )
    finally:
        runtime.close()
    if as_json:
        _print_json(rows)
        return
    table = Table("name", "kind", "status", "root", "id")
    for row in rows:
        table.add_row(*(str(row[k] or "") for k in ("name", "kind", "status", "root", "id")))
    out.print(table)


@source_app.command("remove")
def source_remove(ctx: typer.Context, name: str, as_json: JsonFlag = False) -> None:
    """Remove a source. Its assets stay in the catalog (missing if nothing else has them)."""
    runtime = _runtime(ctx)
    try:
        with runtime.catalog.write() as tx:
            source = find_source(tx.conn, name)
            went_missing = remove_source(tx, source)
    finally:
        runtime.close()
    if as_json:
        _print_json({"removed": source.name, "assets_now_missing": went_missing})
    else:
        out.print(f"removed {source.name}; {went_missing} assets are now missing")


# --- sync --------------------------------------------------------------------------------


def _parse_since(text: str) -> int:
    """`--since`: milliseconds since the epoch, or an ISO 8601 date/time (local time when it
    has no offset)."""
    if text.isdigit():
        return int(text)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        _fail(f"--since wants an ISO 8601 time (2026-11-21T10:00) or epoch ms, not {text!r}")
    if when.tzinfo is None:
        when = when.astimezone()
    return int(when.timestamp() * 1000)


@app.command("sync")
def sync(
    ctx: typer.Context,
    names: Annotated[list[str] | None, typer.Argument(help="Sources (default: all).")] = None,
    full: Annotated[
        bool, typer.Option("--full", help="List everything, then sweep what is gone.")
    ] = False,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Remote sources: what changed after this time."),
    ] = None,
    smart: Annotated[
        bool, typer.Option("--smart", help="Only what reports a change (default).")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Allow a sweep that removes more than the limit.")
    ] = False,
    metadata_only: Annotated[
        bool, typer.Option("--metadata-only", help="Remote sources: phase 1 only, no bytes.")
    ] = False,
    max_pages: Annotated[
        int | None,
        typer.Option("--max-pages", min=1, help="Stop after N pages (the next sync resumes)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Sync sources. Folders: a scan that hashes only new or changed files. Remote sources:
    metadata page by page (resumable), then the bytes their download policy asks for.

    `--json` prints one object per source. Folders: source, added, updated, moved, missing,
    unchanged, errors, seconds (and status, deferred, detail). Remote sources: source, mode,
    status, pages, listed, added, updated, unchanged, deleted, merged, refused, errors,
    seconds, and `download` (what `download --json` prints) unless --metadata-only.
    """
    if sum((full, smart, since is not None)) > 1:
        _fail("--full, --since and --smart are mutually exclusive")
    since_ms = _parse_since(since) if since is not None else None
    mode = "full" if full else "smart"
    runtime = _runtime(ctx)
    cancel = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: cancel.set())
    results: list[dict[str, Any]] = []
    lines: list[str] = []
    failed = False
    try:
        for source in runtime.sources_named(names or []):
            if source.kind == UPLOAD_KIND:
                continue  # filled by `push` clients: there is nothing to pull
            if source.kind == "folder":
                if as_json or not out.is_terminal:
                    report = runtime.scan(source, mode=mode, cancel=cancel)
                else:
                    report = _scan_with_progress(runtime, source, mode, cancel)
                results.append(report.as_json())
                c = report.counts
                line = (
                    f"{report.source}: {report.status} — added {c.added}, updated {c.updated}, "
                    f"moved {c.moved}, missing {c.missing}, unchanged {c.unchanged}, "
                    f"errors {c.errors} in {report.seconds:.2f}s"
                )
                lines.append(line + (f" ({report.detail})" if report.detail else ""))
            else:
                remote, fetched = _sync_remote(
                    runtime,
                    source,
                    "incremental" if since_ms else mode,
                    since_ms,
                    force,
                    max_pages,
                    metadata_only,
                    cancel,
                    quiet=as_json,
                )
                body = remote.as_json()
                if fetched is not None:
                    body["download"] = fetched.as_json()
                results.append(body)
                lines.append(_remote_line(remote, fetched))
                failed = failed or remote.status == "failed"
            if cancel.is_set():
                break
    except KeyboardInterrupt:
        cancel.set()
    finally:
        signal.signal(signal.SIGTERM, previous)
        runtime.close()
    if as_json:
        _print_json(results)
    else:
        for line in lines:
            out.print(line, highlight=False, soft_wrap=True)
    if cancel.is_set():
        raise typer.Exit(130)
    if failed:
        raise typer.Exit(1)


def _remote_line(report: RemoteReport, fetched: DownloadReport | None) -> str:
    c = report.counts
    line = (
        f"{report.source}: {report.status} ({report.mode}) — listed {c.get('listed', 0)}, "
        f"added {c.get('added', 0)}, updated {c.get('updated', 0)}, "
        f"deleted {c.get('deleted', 0)}, merged {c.get('merged', 0)} in {report.seconds:.2f}s"
    )
    if report.skipped_types:
        line += f"; no change in {', '.join(report.skipped_types)}"
    if fetched is not None:
        line += (
            f"; downloaded {fetched.downloaded} ({fetched.bytes / 1e6:.1f} MB), "
            f"failed {fetched.failed}"
        )
    for error in report.errors[:10]:
        line += f"\n  {error}"
    return line


def _transfer_bar(label: str, *, show: bool) -> Progress:
    """A Rich bar for remote work: what it does, items done of total, megabytes moved."""
    return Progress(
        TextColumn(f"[bold]{label}[/bold]"),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[mb]:.1f} MB"),
        console=out,
        transient=True,
        disable=not show,
    )


def _sync_remote(
    runtime: Runtime,
    source: Source,
    mode: str,
    since: int | None,
    force: bool,
    max_pages: int | None,
    metadata_only: bool,
    cancel: threading.Event,
    *,
    quiet: bool,
) -> tuple[RemoteReport, DownloadReport | None]:
    """Phase 1, then (policy `auto`, unless --metadata-only) phase 2 for this source."""
    with _transfer_bar(source.name, show=not quiet and out.is_terminal) as bar:
        task = bar.add_task("metadata", total=None, mb=0.0)

        def listed(entity_type: str, pages: int, items: int) -> None:
            bar.update(task, description=f"{entity_type}: {pages} pages", completed=items)

        report = runtime.sync_remote(
            source,
            mode=mode,
            since=since,
            force=force,
            max_pages=max_pages,
            cancel=cancel,
            progress=listed,
        )
        fetched = None
        if not metadata_only and source.options.get("download", "auto") == "auto":
            bar.update(task, description="bytes", completed=0, total=None)

            def downloaded(done: int, total: int, nbytes: int) -> None:
                bar.update(task, completed=done, total=total, mb=nbytes / 1e6)

            fetched = runtime.download(
                source_ids=[source.id], progress=downloaded, statuses=("pending",)
            )
    return report, fetched


@app.command("download")
def download_command(
    ctx: typer.Context,
    asset_ids: Annotated[
        list[str] | None, typer.Argument(help="Assets whose bytes to fetch now.")
    ] = None,
    all_pending: Annotated[
        bool,
        typer.Option("--all-pending", help="Every remote asset whose bytes are not here yet."),
    ] = False,
    source: Annotated[
        str | None, typer.Option("--source", help="Only this source's assets.")
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", min=1, max=64, help="Parallel downloads.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Phase 2: fetch remote bytes (verified by hash, never twice, retried with backoff).

    `--json` prints {"downloaded", "skipped", "failed", "failed_ids", "bytes", "seconds"}
    (plus not_modified and errors). Exits 1 when a download failed.
    """
    if not asset_ids and not all_pending:
        _fail("name asset ids, or use --all-pending")
    runtime = _runtime(ctx)
    try:
        with runtime.catalog.read() as conn:
            sources = (
                [find_source(conn, source)]
                if source
                else [s for s in list_sources(conn) if s.kind != "folder"]
            )
        with _transfer_bar("download", show=not as_json and out.is_terminal) as bar:
            task = bar.add_task("download", total=None, mb=0.0)

            def progress(done: int, total: int, nbytes: int) -> None:
                bar.update(task, completed=done, total=total, mb=nbytes / 1e6)

            report = runtime.download(
                source_ids=[s.id for s in sources],
                asset_ids=list(asset_ids) if asset_ids else None,
                concurrency=concurrency,
                progress=progress,
            )
    except GallerySyncError as exc:
        _fail(str(exc))
    finally:
        runtime.close()
    if as_json:
        _print_json(report.as_json())
    else:
        out.print(
            f"downloaded {report.downloaded} ({report.bytes / 1e6:.1f} MB), skipped "
            f"{report.skipped}, unchanged {report.not_modified}, failed {report.failed} in "
            f"{report.seconds:.2f}s",
            highlight=False,
        )
        for error in report.errors[:20]:
            err.print(f"  {error}", highlight=False)
    if report.failed:
        raise typer.Exit(1)


def _default_device() -> str:
    """This machine's name, reduced to what the server accepts as a device name."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname()).strip("-._")[:64]
    return name or "device"


def _print_push_status(status: QueueStatus, directory: Path) -> None:
    c = status.counts
    out.print(
        f"{directory} → {status.meta.get('server', '?')} (device {status.meta.get('device', '?')})",
        highlight=False,
    )
    out.print(
        f"pending {c['queued'] + c['hashed'] + c['checked']}, uploading {c['uploading']}, "
        f"done {c['done']}, failed {c['failed']}, deleting {c['deleting']}; "
        f"{status.bytes_sent / 1e6:.1f} MB sent",
        highlight=False,
    )
    for f in status.failed:
        out.print(f"  failed  {f.rel_path}: {f.last_error}", highlight=False, soft_wrap=True)
    for f in status.waiting:
        out.print(
            f"  waiting {f.rel_path} ({f.state.value}, attempt {f.attempts}): {f.last_error}",
            highlight=False,
            soft_wrap=True,
        )


@app.command("push")
def push_command(
    ctx: typer.Context,
    directory: Annotated[
        Path, typer.Argument(help="The folder to push.", file_okay=False, resolve_path=True)
    ],
    to: Annotated[
        str | None, typer.Option("--to", help="The server's base URL, e.g. https://host:8765.")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="GALLERYSYNC_TOKEN", help="API token (`token create`)."),
    ] = None,
    device: Annotated[
        str | None, typer.Option("--device", help="This machine's name (default: hostname).")
    ] = None,
    once: Annotated[
        bool,
        typer.Option("--once", help="Push what is there, wait until done, exit (1 on failures)."),
    ] = False,
    status: Annotated[
        bool, typer.Option("--status", help="Show the queue: pending, done, failed and why.")
    ] = False,
    mirror_deletes: Annotated[
        bool,
        typer.Option("--mirror-deletes", help="Deleting a local file trashes it on the server."),
    ] = False,
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", min=1, max=64, help="Parallel uploads.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Upload every image in DIRECTORY to a server, exactly once: those already there, those
    added while this was off or offline, and (unless --once) those added while it runs.

    The queue lives in the home (one SQLite file per folder) and survives crashes: run the same
    command again and it continues. Ctrl-C stops cleanly. `--status --json` prints the queue
    as one object: server, dir, device, counts (queued, hashed, checked, uploading, done,
    failed, deleting), bytes_sent, failed and waiting (path, state, attempts, error).
    """
    from gallerysync.push.client import PushClient, PushOptions, queue_path_for
    from gallerysync.push.queue import PushQueue

    settings = _settings(ctx)
    queue_file = queue_path_for(settings.home, directory)
    if status:
        if not queue_file.exists():
            _fail(f"{directory} has never been pushed from this home ({settings.home})")
        queue = PushQueue(queue_file)
        try:
            current = queue.status()
        finally:
            queue.close()
        if as_json:
            _print_json(current.as_json())
        else:
            _print_push_status(current, directory)
        return
    if to is None:
        _fail("push needs --to URL (or --status)", 2)
    if not directory.is_dir():
        _fail(f"{directory} is not a directory", 2)
    from gallerysync.sources.registry import normalise_url
    from gallerysync.sync.upload import check_device

    try:
        options = PushOptions(
            root=directory,
            server=normalise_url(to),
            token=token,
            device=check_device(device or _default_device()),
            concurrency=concurrency or settings.push_concurrency,
            settle_seconds=settings.settle_seconds,
            retry_base_seconds=settings.retry_base_seconds,
            mirror_deletes=mirror_deletes,
        )
    except GallerySyncError as exc:
        _fail(str(exc), 2)
    queue = PushQueue(queue_file)
    show = out.is_terminal and not as_json
    bar = Progress(
        TextColumn("[bold]push[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[mb]:.1f} MB sent"),
        TextColumn("{task.description}"),
        console=out,
        transient=False,
        disable=not show,
    )
    task = bar.add_task("", total=None, mb=0.0)

    def progress(current: QueueStatus, problem: str) -> None:
        c = current.counts
        total = sum(n for state, n in c.items() if state != "deleting")
        note = f"[yellow]{problem}[/yellow]" if problem else f"{c['uploading']} uploading"
        bar.update(
            task,
            total=total,
            completed=c["done"] + c["failed"],
            mb=current.bytes_sent / 1e6,
            description=note,
        )

    async def run() -> QueueStatus:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        client = PushClient(options, queue, on_progress=progress)
        return await client.run(stop, once=once)

    try:
        with bar:
            final = asyncio.run(run())
    finally:
        queue.close()
    if as_json:
        _print_json(final.as_json())
    elif not show:
        _print_push_status(final, directory)
    else:
        for f in final.failed:
            out.print(f"failed {f.rel_path}: {f.last_error}", highlight=False, soft_wrap=True)
    if once and final.counts["failed"]:
        raise typer.Exit(1)


def _scan_with_progress(runtime: Runtime, source: Any, mode: str, cancel: threading.Event) -> Any:
    with Progress(
        TextColumn(f"[bold]{source.name}[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[mb]:.0f} MB"),
        TimeRemainingColumn(),
        console=out,
        transient=True,
    ) as bar:
        task = bar.add_task("scan", total=None, mb=0.0)

        def progress(done: int, total: int, nbytes: int) -> None:
            bar.update(task, completed=done, total=total, mb=nbytes / 1e6)

        try:
            return runtime.scan(source, mode=mode, cancel=cancel, progress=progress)
        except KeyboardInterrupt:
            cancel.set()
            raise


@app.command("import")
def import_command(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(help="Image or video files to copy in.")],
    to: Annotated[str, typer.Option("--to", help="The folder source to copy them into.")],
    as_json: JsonFlag = False,
) -> None:
    """Copy files into a folder source as `<32 hex of BLAKE3>.<ext>` and register them.

    Content-addressed names: importing the same image twice, or from two machines into one
    shared folder, writes one file. Incomplete or unreadable files are refused.
    """
    runtime = _runtime(ctx)
    try:
        with runtime.catalog.read() as conn:
            source = find_source(conn, to)
        if source.kind != "folder":
            _fail(f"{source.name} is a {source.kind} source, not a folder")
        results = import_files(runtime.catalog, source, files)
    finally:
        runtime.close()
    if as_json:
        _print_json([r.__dict__ for r in results])
    else:
        for r in results:
            target = f" → {r.rel_path}" if r.rel_path else ""
            extra = f" ({r.detail})" if r.detail else ""
            out.print(f"{r.status}: {r.source_path}{target}{extra}", highlight=False)
    if any(r.status == "error" for r in results):
        raise typer.Exit(1)


# --- assets ------------------------------------------------------------------------------


def _asset_json(asset: Asset, source_names: dict[str, str]) -> dict[str, Any]:
    return {
        "id": asset.id,
        "hash": asset.hash,
        "status": asset.status.value,
        "kind": asset.kind,
        "format": asset.format,
        "width": asset.width,
        "height": asset.height,
        "size": asset.size,
        "thumbnail": asset.thumb_hash,
        "created_at": asset.created_at,
        "updated_at": asset.updated_at,
        "version": asset.version,
        "origins": [
            {
                "id": o.id,
                "source": source_names.get(o.source_id, o.source_id),
                "path": o.remote_id,
                "status": o.status.value,
            }
            for o in asset.origins
        ],
    }


@assets_app.command("list")
def assets_list(
    ctx: typer.Context,
    source: Annotated[str | None, typer.Option("--source", help="Only this source.")] = None,
    status: Annotated[str | None, typer.Option("--status", help="present or missing.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100_000)] = 100,
    as_json: JsonFlag = False,
) -> None:
    """List assets, newest first."""
    if status not in (None, "present", "missing"):
        _fail("--status must be present or missing")
    runtime = _runtime(ctx)
    try:
        with runtime.catalog.read() as conn:
            names = {s.id: s.name for s in list_sources(conn)}
            source_id = find_source(conn, source).id if source else None
            assets = list_assets(conn, source_id=source_id, status=status, limit=limit)
    finally:
        runtime.close()
    if as_json:
        _print_json([_asset_json(a, names) for a in assets])
        return
    table = Table("id", "status", "format", "size", "path")
    for a in assets:
        first = a.origins[0].remote_id if a.origins else ""
        extra = f" (+{len(a.origins) - 1})" if len(a.origins) > 1 else ""
        dims = f"{a.width}×{a.height}" if a.width else ""
        table.add_row(
            a.id, a.status.value, f"{a.format or a.kind} {dims}", str(a.size or ""), first + extra
        )
    out.print(table)


@assets_app.command("show")
def assets_show(ctx: typer.Context, asset_id: str, as_json: JsonFlag = False) -> None:
    """Show one asset and where its bytes are."""
    runtime = _runtime(ctx)
    try:
        with runtime.catalog.read() as conn:
            names = {s.id: s.name for s in list_sources(conn)}
            asset = get_asset(conn, asset_id)
    finally:
        runtime.close()
    data = _asset_json(asset, names)
    if as_json:
        _print_json(data)
        return
    for key, value in data.items():
        if key != "origins":
            out.print(f"{key:>11}: {value}", highlight=False)
    for origin in data["origins"]:
        out.print(
            f"     origin: {origin['source']}:{origin['path']} ({origin['status']})",
            highlight=False,
        )


# --- change feed ---------------------------------------------------------------------------


@app.command("changes")
def changes_command(
    ctx: typer.Context,
    since: Annotated[
        str | None, typer.Option("--since", help="A token from an earlier run, or `now`.")
    ] = None,
    follow: Annotated[bool, typer.Option("--follow", help="Keep printing new changes.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Print the change feed: every catalog change in commit order, resumable by token.

    `--json` prints one JSON object per line (the change, with its `token`); the last line
    of a run without `--follow` is `{"next": TOKEN, "up_to_date": true}` to resume from.
    """
    runtime = _runtime(ctx)
    catalog = runtime.catalog
    scope = catalog.default_owner_id
    try:
        position = 0
        if since == "now":
            position = catalog.head()
        elif since:
            position = decode_token(since, catalog)
        while True:
            with catalog.read() as conn:
                page = read_page(conn, scope=scope, since=position, limit=MAX_PAGE)
            for change in page.changes:
                token = encode_token(catalog.instance_id, catalog.epoch, change["seq"])
                if as_json:
                    sys.stdout.write(json.dumps({**change, "token": token}) + "\n")
                else:
                    state = change["data"] or {}
                    label = state.get("name") or state.get("format") or ""
                    out.print(
                        f"{token} {change['op']:<6} {change['type']:<6} {change['id']} {label}",
                        highlight=False,
                    )
            sys.stdout.flush()
            position = page.covers_to
            if page.up_to_date and not follow:
                break
            if page.up_to_date:
                catalog_wait(catalog, position)
    except KeyboardInterrupt:
        pass
    finally:
        runtime.close()
    token = encode_token(catalog.instance_id, catalog.epoch, position)
    if as_json:
        sys.stdout.write(json.dumps({"next": token, "up_to_date": True}) + "\n")
    else:
        err.print(f"resume with --since {token}", highlight=False)


def catalog_wait(catalog: Catalog, position: int, seconds: float = 0.5) -> None:
    """Block until the head passes `position`: other processes' writes reach this one only
    through the database, so poll its head (one tiny query per half second)."""
    while catalog.head() <= position:
        time.sleep(seconds)


# --- maintenance ---------------------------------------------------------------------------


@app.command("inspect")
def inspect(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """The storage inspector: what is registered, unregistered, missing, broken, duplicated."""
    runtime = _runtime(ctx)
    try:
        report = inspect_storage(runtime.catalog, runtime.blobs)
    finally:
        runtime.close()
    if as_json:
        _print_json(report)
        return
    for sd in report["storage_dirs"]:
        out.print(
            f"[bold]{sd['source']}[/bold] {sd['root']} — {sd['status']}"
            + (f" ({sd['status_detail']})" if sd["status_detail"] else "")
        )
        idf = sd["id_file"]
        out.print(f"  SD_ID: {idf['status']}" + (f" — {idf['detail']}" if idf["detail"] else ""))
        out.print(
            f"  on disk {sd['files_on_disk']}, registered {sd['registered']}, "
            f"unregistered {sd['unregistered']}, missing {sd['missing']}, "
            f"errored {sd['errored']}, duplicate groups {sd['duplicate_groups']}",
            highlight=False,
        )
        for e in sd["errors"][:20]:
            out.print(f"    ! {e['path']}: {e['error']}", highlight=False)
    out.print(f"duplicate groups: {len(report['duplicate_groups'])}")
    b = report["blobs"]
    out.print(f"blobs: {b['count']} ({b['bytes']} bytes), orphans {b['orphans']}")
    j = report["jobs"]
    out.print(f"jobs: pending {j['pending']}, failed {j['failed']}")


@app.command("gc")
def gc(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only report.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Remove blobs (stored originals, thumbnails) that no asset references."""
    runtime = _runtime(ctx)
    try:
        report = collect_garbage(runtime.catalog, runtime.blobs, dry_run=dry_run)
    finally:
        runtime.close()
    if as_json:
        _print_json(report.as_json())
    else:
        verb = "would remove" if dry_run else "removed"
        out.print(f"{verb} {len(report.removed)} blobs ({report.bytes} bytes)")


# --- users and tokens --------------------------------------------------------------------


@user_app.command("add")
def user_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="User name (unique).")],
    as_json: JsonFlag = False,
) -> None:
    """Add a user. Give them a token with `gallerysync token create --user NAME`."""
    runtime = _runtime(ctx)
    try:
        user = add_user(runtime.catalog, name)
    finally:
        runtime.close()
    if as_json:
        _print_json({"id": user.id, "name": user.name, "created_at": user.created_at})
    else:
        out.print(f"added user [bold]{user.name}[/bold] ({user.id})")


@user_app.command("list")
def user_list(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List users."""
    runtime = _runtime(ctx)
    try:
        with runtime.catalog.read() as conn:
            users = list_users(conn)
    finally:
        runtime.close()
    if as_json:
        _print_json([{"id": u.id, "name": u.name, "created_at": u.created_at} for u in users])
        return
    for user in users:
        out.print(f"{user.name}\t{user.id}", highlight=False)


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    user: Annotated[str, typer.Option("--user", help="The user the token acts as.")],
    label: Annotated[str, typer.Option("--label", help="A note to recognise it by.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Create a bearer token. It is printed once; only its SHA-256 is stored."""
    runtime = _runtime(ctx)
    try:
        with runtime.catalog.read() as conn:
            owner = get_user(conn, user)
        secret, token = create_token(runtime.catalog, owner.id, label)
    finally:
        runtime.close()
    if as_json:
        _print_json({"id": token.id, "user": owner.name, "label": label, "token": secret})
    else:
        err.print(f"token {token.id} for {owner.name} (shown once, keep it safe):")
        out.print(secret, highlight=False)


@token_app.command("list")
def token_list(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Option("--user", help="Only this user's tokens.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List tokens (their ids and first characters; the secrets are not stored)."""
    runtime = _runtime(ctx)
    try:
        with runtime.catalog.read() as conn:
            names = {u.id: u.name for u in list_users(conn)}
            user_id = get_user(conn, user).id if user else None
            tokens = list_tokens(conn, user_id)
    finally:
        runtime.close()
    rows = [
        {
            "id": t.id,
            "user": names.get(t.user_id, t.user_id),
            "label": t.label,
            "prefix": t.prefix,
            "created_at": t.created_at,
        }
        for t in tokens
    ]
    if as_json:
        _print_json(rows)
        return
    for row in rows:
        out.print(f"{row['id']}\t{row['user']}\t{row['prefix']}…\t{row['label']}", highlight=False)


@token_app.command("revoke")
def token_revoke(
    ctx: typer.Context, token_id: Annotated[str, typer.Argument(help="Token id (token list).")]
) -> None:
    """Revoke a token; sessions signed in with it end too."""
    runtime = _runtime(ctx)
    try:
        revoke_token(runtime.catalog, token_id)
    finally:
        runtime.close()
    out.print(f"revoked {token_id}")


# --- serve -------------------------------------------------------------------------------


@app.command("serve")
def serve_command(
    ctx: typer.Context,
    host: Annotated[
        str | None,
        typer.Option("--host", help="Bind address (non-loopback only with GALLERYSYNC_AUTH=on)."),
    ] = None,
    port: Annotated[int | None, typer.Option("--port", help="TCP port.", min=0, max=65535)] = None,
) -> None:
    """Run gallerysync: start-up scans in the background, watchers, job workers, /healthz."""
    settings = _settings(ctx)
    bind_host = host or settings.host
    bind_port = settings.port if port is None else port
    try:
        check_bind_host(bind_host, auth=settings.auth)
    except GallerySyncError as exc:
        _fail(str(exc), 2)
    runtime = open_runtime(settings)
    err.print(
        f"gallerysync {__version__} serving http://{bind_host}:{bind_port} (home {settings.home})",
        highlight=False,
    )
    try:
        asyncio.run(serve(runtime, bind_host, bind_port))
    finally:
        runtime.close()


def main() -> None:
    try:
        app()
    except GallerySyncError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(2 if isinstance(exc, InvalidInputError) else 1)
