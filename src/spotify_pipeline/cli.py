"""The command line: parse options, call the library, turn library errors into one line and an exit code."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import click

from . import __version__
from .errors import Interrupted, PipelineError

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("spotify_pipeline")


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": _utc_iso(record.created),
            "level": record.levelname.lower(),
            "msg": record.getMessage(),
        }
        payload.update(getattr(record, "fields", {}))
        return json.dumps(payload, ensure_ascii=False)


def _utc_iso(created: float) -> str:
    """A log record's time, ISO 8601 in UTC with milliseconds: 2026-05-01T12:00:00.123Z."""
    import datetime as dt

    return dt.datetime.fromtimestamp(created, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _setup_logging(log_format: str, verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if log_format == "json" else logging.Formatter("%(levelname)s %(message)s"))
    root = logging.getLogger("spotify_pipeline")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO if log_format == "json" else logging.WARNING)


def handle_errors(func: F) -> F:
    """Library errors become `Error: <one line>` and their exit code; anything unexpected too (exit 1);
    --debug shows the traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        debug = bool(ctx.find_root().params.get("debug"))
        try:
            return func(*args, **kwargs)
        except PipelineError as exc:
            if debug:
                raise
            click.echo(f"Error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except Interrupted as exc:  # already acknowledged when the signal arrived
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted; everything written so far is kept. Re-run to continue.", err=True)
            sys.exit(130)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            if debug:
                raise
            click.echo(f"Error: unexpected {type(exc).__name__}: {exc} (a bug: --debug shows the traceback)", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


SIGNAL_REASONS = {
    signal.SIGINT: "interrupted by the user (Ctrl-C)",
    signal.SIGTERM: "terminated (SIGTERM)",
}


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Ctrl-C and SIGTERM (what schedulers send) stop a run the same way: acknowledged at once on stderr,
    then raised as `Interrupted` in the main thread, so the run stops its workers, writes what it has and
    is recorded `interrupted`; exit 130 (Ctrl-C) or 143 (SIGTERM). A second signal exits at once: what was
    written is kept, and the next run recovers it."""
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if stopping:
            os.write(2, b"interrupted again: exiting now (the next run recovers what was written)\n")
            os._exit(128 + signum)
        stopping = True
        os.write(2, b"interrupted: stopping (the run is recorded; re-run to resume)\n")
        raise Interrupted(SIGNAL_REASONS[signal.Signals(signum)], 128 + signum)

    try:
        previous = {sig: signal.signal(sig, on_signal) for sig in SIGNAL_REASONS}
    except ValueError:  # not the main thread (an embedding application): leave its signals alone
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


GLOBAL_FLAGS = ("--debug",)
GLOBAL_VALUED = ("--log-format", "--lake")


def hoist_global_options(args: list[str], commands: Mapping[str, click.Command]) -> list[str]:
    """`cmd ... --debug --log-format json --lake X` -> `--debug --log-format json --lake X cmd ...`: the global
    options are accepted before or after the command. `--lake` moves only for a command that has no `--lake`
    of its own (the command's own option is the same setting); nothing after `--` moves."""
    position = 0
    while position < len(args) and args[position].startswith("-"):  # the group's own options, before the command
        position += 1 + (args[position] in GLOBAL_VALUED)
    if position >= len(args) or args[position] not in commands:
        return args
    own = {opt for param in commands[args[position]].params for opt in getattr(param, "opts", [])}
    moved: list[str] = []
    rest: list[str] = []
    tail = args[position + 1 :]
    i = 0
    while i < len(tail):
        arg = tail[i]
        name = arg.split("=", 1)[0]
        if arg == "--":
            rest += tail[i:]
            break
        if name in own:  # the command's own option (and its value) stays with it
            rest.append(arg)
            takes_value = any(
                name in getattr(p, "opts", []) and not getattr(p, "is_flag", False)
                for p in commands[args[position]].params
            )
            if takes_value and "=" not in arg and i + 1 < len(tail):
                rest.append(tail[i + 1])
                i += 1
        elif arg in GLOBAL_FLAGS:
            moved.append(arg)
        elif name in GLOBAL_VALUED:
            moved.append(arg)
            if "=" not in arg and i + 1 < len(tail):
                moved.append(tail[i + 1])
                i += 1
        else:
            rest.append(arg)
        i += 1
    return [*args[:position], *moved, args[position], *rest]


class MainGroup(click.Group):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_global_options(list(args), self.commands))


@click.group(cls=MainGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="spotify-pipeline")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Log lines as text or as JSON objects (for log shippers).",
)
@click.option(
    "--lake",
    "global_lake",
    default=None,
    help="Lake for every command: a folder or s3://bucket/prefix. [env SPOTIFY_PIPELINE_LAKE; default ./lake]",
)
def main(debug: bool, log_format: str, global_lake: str | None) -> None:
    """Spotify playlists -> raw zone -> Iceberg tables -> SQL.

    Start with `spotify-pipeline demo`: it needs no credentials and no network. --debug, --log-format and
    --lake may come before or after the command.
    """
    _setup_logging(log_format, debug)


@main.command()
@click.option("--port", type=int, default=0, show_default=True, help="Port on 127.0.0.1; 0 picks a free one.")
@click.option("--seed", type=int, default=7, show_default=True, help="Seed of the generated catalog.")
@click.option("--playlists", type=int, default=5, show_default=True, help="Number of playlists.")
@click.option("--items-per-playlist", type=int, default=40, show_default=True, help="Mean items per playlist.")
@click.option(
    "--large-playlist-items",
    type=int,
    default=0,
    show_default=True,
    help="Give playlist #1 this many items (a large, many-page playlist); 0 = none.",
)
@click.option(
    "--quirk-rate",
    type=float,
    default=0.03,
    show_default=True,
    help="Share of items that are null, local, episodes, duplicates or very old.",
)
@click.option(
    "--mode",
    type=click.Choice(["extended", "development"]),
    default="extended",
    show_default=True,
    help="Extended quota (everything) or Development Mode (no batch endpoints, fewer fields).",
)
@click.option("--client-id", default="sim-client-id", show_default=True, help="Accepted client ID.")
@click.option("--client-secret", default="sim-client-secret", show_default=True, help="Accepted client secret.")
@click.option("--token-ttl", type=float, default=3600.0, show_default=True, help="Access token lifetime, seconds.")
@click.option("--latency-ms", type=int, default=0, show_default=True, help="Added latency per API request.")
@click.option(
    "--rate-limit",
    type=int,
    default=0,
    show_default=True,
    help="Requests allowed per rolling window (429 beyond); 0 = unlimited.",
)
@click.option("--rate-window", type=float, default=30.0, show_default=True, help="Rolling window, seconds.")
@click.option("--error-rate", type=float, default=0.0, show_default=True, help="Share answered 500/502/503.")
@click.option("--drop-rate", type=float, default=0.0, show_default=True, help="Share of dropped connections.")
@click.option("--legacy-items", is_flag=True, help="Serve only the pre-2026 /tracks endpoint and `track` key.")
@click.option(
    "--taste", is_flag=True, help="Playlists drawn from genre/era scenes (structure a recommender can learn)."
)
@click.option(
    "--login-user",
    default="alice",
    show_default=True,
    help="The user /authorize logs in (owns some playlists, collaborates on others).",
)
@click.option("--rotate-refresh-tokens", is_flag=True, help="Issue a new refresh token on every refresh.")
@click.option(
    "--refresh-token-max-age",
    type=float,
    default=None,
    help="Seconds a login's refresh token works, from the login (Spotify: 6 months); then invalid_grant.",
)
@click.option(
    "--ids-file",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Write every playlist ID to this file, one a line (for --playlists-file).",
)
@handle_errors
def simulate(**options: Any) -> None:
    """Run the simulated Spotify Web API on 127.0.0.1 until interrupted.

    Accounts service at http://127.0.0.1:PORT/api/token, Web API at http://127.0.0.1:PORT/v1.
    Admin: GET /_admin/stats, POST /_admin/faults, POST /_admin/mutate, POST /_admin/expire-tokens,
    POST /_admin/expire-login (every saved login's refresh token answers invalid_grant from then on).
    """
    from .errors import ConfigError
    from .simulator import Catalog, CatalogConfig, FaultPlan, SimulatedSpotify

    catalog = Catalog(
        CatalogConfig(
            seed=options["seed"],
            playlists=options["playlists"],
            items_per_playlist=options["items_per_playlist"],
            large_playlist_items=options["large_playlist_items"],
            quirk_rate=options["quirk_rate"],
            mode=options["mode"],
            taste=options["taste"],
        )
    )
    faults = FaultPlan(
        latency_ms=options["latency_ms"],
        rate_limit=options["rate_limit"],
        rate_window_s=options["rate_window"],
        error_rate=options["error_rate"],
        drop_rate=options["drop_rate"],
    )
    try:
        server = SimulatedSpotify(
            catalog,
            port=options["port"],
            client_id=options["client_id"],
            client_secret=options["client_secret"],
            token_ttl=options["token_ttl"],
            faults=faults,
            legacy_items=options["legacy_items"],
            login_user=options["login_user"],
            rotate_refresh_tokens=options["rotate_refresh_tokens"],
            refresh_token_max_age=options["refresh_token_max_age"],
        )
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on 127.0.0.1:{options['port']}: {exc.strerror or exc}",
            hint="another process has that port; use --port 0 for a free one, or another --port",
        ) from exc
    ids = server.playlist_ids()
    if options["ids_file"]:
        try:
            Path(options["ids_file"]).write_text("".join(f"{pid}\n" for pid in ids), encoding="utf-8")
        except OSError as exc:
            server.stop()
            raise ConfigError(
                f"cannot write {options['ids_file']}: {exc.strerror}", hint="choose another --ids-file"
            ) from exc
    # The simulator's client secret is a documented test value, not a secret: print it whole.
    click.echo(f"Simulated Spotify Web API listening on {server.base_url}")
    click.echo(f"  export SPOTIFY_API_URL={server.api_url}")
    click.echo(f"  export SPOTIFY_ACCOUNTS_URL={server.accounts_url}")
    click.echo(f"  export SPOTIFY_CLIENT_ID={options['client_id']}")
    click.echo(f"  export SPOTIFY_CLIENT_SECRET={options['client_secret']}")
    click.echo(f"  playlists: {' '.join(ids[:5])}{' ...' if len(ids) > 5 else ''}")
    if options["ids_file"]:
        click.echo(f"  all {len(ids)} playlist IDs: {options['ids_file']} (use --playlists-file {options['ids_file']})")
    sys.stdout.flush()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


# ---- shared options ----
format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="Output format; json prints an array of objects.",
)


def lake_option(func: F) -> F:
    return click.option(
        "--lake", default=None, help="Lake: a folder or s3://bucket/prefix. [env SPOTIFY_PIPELINE_LAKE; default ./lake]"
    )(func)


def _settings(**flags: Any) -> Any:
    from .config import load_settings

    config_file = flags.pop("config", None)
    if flags.get("lake") is None:
        flags["lake"] = _global_lake()
    return load_settings(flags, config_file=Path(config_file) if config_file else None)


def _global_lake() -> str | None:
    ctx = click.get_current_context(silent=True)
    return ctx.find_root().params.get("global_lake") if ctx is not None else None


def _lake(**flags: Any) -> Any:
    """The `Lake` for these flags (settings as `_settings`)."""
    from .lake_api import Lake

    return Lake.open(settings=_settings(**flags))


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, indent=2, allow_nan=False))


text_json_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text for people; json (one object, numbers as numbers) for scripts.",
)


def extract_options(func: F) -> F:
    options = [
        click.option(
            "--playlist",
            "playlists",
            multiple=True,
            help="Playlist ID, spotify:playlist:ID or open.spotify.com URL. Repeatable.",
        ),
        click.option(
            "--playlists-file",
            type=click.Path(dir_okay=False, path_type=Path),
            help="File with one playlist reference per line (# comments allowed).",
        ),
        click.option(
            "--full",
            is_flag=True,
            help="Extract every playlist's items even if its snapshot_id is unchanged.",
        ),
        click.option("--concurrency", type=int, default=None, help="Parallel requests. [default 8]"),
        click.option(
            "--rate-limit",
            type=float,
            default=None,
            help="Client-side limit, requests per second; 0 = none. [default 0]",
        ),
        click.option(
            "--max-retry-wait",
            type=float,
            default=None,
            help="Longest Retry-After (seconds) to wait on a 429 before stopping cleanly. [default 120]",
        ),
        click.option(
            "--enrich-ttl",
            "enrich_ttl_days",
            type=float,
            default=None,
            help="Days before an already enriched artist or album is fetched again. [default 7]",
        ),
        click.option(
            "--source",
            "sources",
            multiple=True,
            type=click.Choice(["my-playlists", "liked", "recently-played", "top"]),
            help="A user source (needs `spotify-pipeline login`). Repeatable; combines with --playlist.",
        ),
        click.option(
            "--auth",
            type=click.Choice(["auto", "client", "user"]),
            default=None,
            help="auto: the saved login if any, else client credentials. [env SPOTIFY_PIPELINE_AUTH]",
        ),
        click.option(
            "--config",
            type=click.Path(dir_okay=False),
            default=None,
            help="TOML config file. [default ./spotify-pipeline.toml if present]",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return lake_option(func)


def _playlist_ids(playlists: tuple[str, ...], playlists_file: Path | None, sources: tuple[str, ...] = ()) -> list[str]:
    import os

    from .errors import InputError
    from .ids import parse_playlist_refs, read_playlists_file

    refs = list(playlists)
    if playlists_file:
        refs += read_playlists_file(playlists_file)
    if not refs and os.environ.get("SPOTIFY_PLAYLIST_IDS"):
        refs = os.environ["SPOTIFY_PLAYLIST_IDS"].split(",")
    ids = parse_playlist_refs(refs)
    if not ids and not sources:
        raise InputError(
            "no playlists given",
            hint="use --playlist ID (repeatable), --playlists-file, SPOTIFY_PLAYLIST_IDS, or --source",
        )
    return ids


def _extract_settings(opts: dict[str, Any]) -> Any:
    return _settings(
        lake=opts["lake"],
        concurrency=opts["concurrency"],
        rate_limit=opts["rate_limit"],
        max_retry_wait=opts["max_retry_wait"],
        enrich_ttl_days=opts["enrich_ttl_days"],
        auth=opts["auth"],
        config=opts["config"],
    )


def _exit_for(status: str) -> None:
    if status == "partial":
        click.echo("Error: some playlists failed (see above); the others were extracted", err=True)
        sys.exit(3)
    if status == "stopped":
        sys.exit(5)
    if status == "failed":
        sys.exit(1)


# ---- commands ----------------------------------------------------------------------------------------
@main.command()
@extract_options
@text_json_option
@handle_errors
def extract(**opts: Any) -> None:
    """Extract playlists into the raw zone (no tables are changed).

    Only playlists whose snapshot_id changed since the last run are fetched again, unless --full.
    Credentials: SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET.
    """
    from .console import TerminalProgress, echo_lines, extract_lines
    from .lake_api import Lake

    ids = _playlist_ids(opts["playlists"], opts["playlists_file"], opts["sources"])
    lake = Lake.open(settings=_extract_settings(opts))
    with stop_on_signals(), TerminalProgress(len(ids)) as progress:
        result = lake.extract(ids, full=opts["full"], progress=progress, sources=opts["sources"])
    if opts["fmt"] == "json":
        _echo_json(result.as_dict())
    else:
        echo_lines(extract_lines(result.summary), click.echo)
    _exit_for(result.status)


@main.command()
@lake_option
@click.option("--rebuild", is_flag=True, help="Recreate every table from the raw zone alone.")
@text_json_option
@handle_errors
def transform(lake: str | None, rebuild: bool, fmt: str) -> None:
    """Transform raw runs not yet processed into the tables (idempotent)."""
    from .console import echo_lines, history_lines, transform_lines

    the_lake = _lake(lake=lake)
    with stop_on_signals():
        result = the_lake.transform(rebuild=rebuild)
    if fmt == "json":
        _echo_json(result.as_dict())
        return
    echo_lines(transform_lines(result.detail) + history_lines(result.history), click.echo)


@main.command()
@extract_options
@text_json_option
@handle_errors
def run(**opts: Any) -> None:
    """Extract, then transform: the everyday command, and what a scheduler calls."""
    from .console import TerminalProgress, echo_lines, extract_lines, history_lines, transform_lines
    from .lake_api import Lake

    ids = _playlist_ids(opts["playlists"], opts["playlists_file"], opts["sources"])
    lake = Lake.open(settings=_extract_settings(opts))
    with stop_on_signals(), TerminalProgress(len(ids)) as progress:
        result = lake.run(ids, full=opts["full"], progress=progress, sources=opts["sources"])
    if opts["fmt"] == "json":
        _echo_json(result.as_dict())
    else:
        echo_lines(extract_lines(result.extract.summary), click.echo)
        echo_lines(transform_lines(result.transform.detail) + history_lines(result.transform.history), click.echo)
    _exit_for(result.status)


@main.command()
@lake_option
@click.option(
    "--every", default="5m", show_default=True, help="Time between polls: e.g. 5m, 30s, 1h (seconds if no unit)."
)
@click.option("--max-polls", type=click.IntRange(min=1), default=None, help="Stop after this many polls.")
@click.option(
    "--auth",
    type=click.Choice(["auto", "user"]),
    default=None,
    help="auto: the saved login (recently played needs one). [env SPOTIFY_PIPELINE_AUTH]",
)
@click.option("--config", type=click.Path(dir_okay=False), default=None, help="TOML config file.")
@handle_errors
def poll(lake: str | None, every: str, max_polls: int | None, auth: str | None, config: str | None) -> None:
    """Capture recently played continuously: check every --every, run when there are new plays.

    A check that finds nothing new costs one request; no lock is held between polls. Ctrl-C stops.
    Instead of a long-running process, a scheduler can call `run --source recently-played` (see README).
    """
    from .poll import Poller, parse_every

    seconds = parse_every(every)
    poller = Poller(_settings(lake=lake, auth=auth, config=config))
    click.echo(f"polling recently played every {seconds:g} s (Ctrl-C to stop)")
    sys.stdout.flush()

    def echo(line: str) -> None:
        click.echo(line)
        sys.stdout.flush()

    polls = 0
    try:
        with stop_on_signals():
            polls = poller.run(seconds, echo, max_polls=max_polls)
    except KeyboardInterrupt as exc:
        code = getattr(exc, "exit_code", 130)
        running = poller.running
        echo(f"poll stopped{' during a run (recorded interrupted)' if running else ''}")
        if running:
            sys.exit(code)
        return
    finally:
        poller.close()
    echo(f"poll stopped after {polls} polls")


@main.command()
@lake_option
@click.option(
    "--keep-days",
    type=float,
    default=None,
    help="Days of table snapshots kept for time travel. [default: table_history_days, 7]",
)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True, help="Output format."
)
@handle_errors
def maintain(lake: str | None, keep_days: float | None, fmt: str) -> None:
    """Compact small table files, expire old snapshots and delete orphan files (under the lake lock).
    Run it daily, or after many runs: each run leaves files and snapshots behind."""
    from .maintenance import maintain as run_maintenance
    from .pipeline import lake_lock, lake_parts

    settings = _settings(lake=lake)
    storage, catalog = lake_parts(settings)
    with lake_lock(storage, catalog, "maintain"):
        result = run_maintenance(storage, catalog, settings.table_history_days if keep_days is None else keep_days)
    if fmt == "json":
        click.echo(json.dumps(result.as_dict(), indent=2))
        return
    click.echo(
        f"compacted {result.files_compacted} files into {result.files_written} "
        f"({', '.join(result.tables_compacted) or 'no table'}); expired {result.expiry.snapshots} snapshots "
        f"({result.expiry.files_deleted} files, {result.expiry.data_bytes_deleted:,} data bytes); deleted "
        f"{result.orphans_deleted} orphan files ({result.orphan_bytes_deleted:,} bytes) in {result.seconds:.1f}s"
    )


@main.command()
@click.argument("sql", required=False)
@lake_option
@format_option
@click.option("--file", "sql_file", type=click.File("r"), help="Read the SQL from a file ('-' for stdin).")
@click.option("--report", "report_name", default=None, help="Run a named report instead (see `report --list`).")
@click.option("--param", "params", multiple=True, help="Report parameter, e.g. --param playlist=ID. Repeatable.")
@click.option(
    "--engine",
    type=click.Choice(["duckdb", "athena"]),
    default="duckdb",
    show_default=True,
    help="duckdb: in this process; athena: Amazon Athena over the Glue tables (an s3:// lake).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=0,
    show_default=True,
    help="Stop the query after this many seconds; 0 = no limit (duckdb engine).",
)
@handle_errors
def query(
    sql: str | None,
    lake: str | None,
    fmt: str,
    sql_file: Any,
    report_name: str | None,
    params: tuple[str, ...],
    engine: str,
    timeout: float,
) -> None:
    """Run a read-only SQL query over the tables (by name: songs, artists, playlist_songs, ...).

    One SELECT (or EXPLAIN of one) at a time, in a sandbox that reads only the tables' own files:
    no COPY, ATTACH, SET, INSTALL or file-reading functions.
    """
    from .errors import InputError
    from .query import format_result

    text = sql_file.read() if sql_file else sql
    if report_name and text:
        raise click.UsageError("give either SQL or --report NAME, not both")
    if not text and not report_name:
        raise InputError("no SQL given", hint='spotify-pipeline query "SELECT count(*) FROM songs", or --report NAME')
    settings = _settings(lake=lake)
    if engine == "athena":
        from .athena import run_athena
        from .reports import get_report

        sql_text = get_report(report_name).render(_params(params)) if report_name else (text or "")
        output = settings.athena_output or f"{settings.lake.rstrip('/')}/athena-results/"
        result = run_athena(
            sql_text, database=settings.glue_database, workgroup=settings.athena_workgroup, output=output
        )
        click.echo(format_result(result, fmt))
        return
    from .lake_api import Lake

    opened = Lake.open(settings=settings)
    if report_name:
        result = opened.report(report_name, **_params(params))
    else:
        result = opened.rows(text or "", timeout=timeout or None)
    click.echo(format_result(result, fmt))


@main.command()
@lake_option
@text_json_option
@handle_errors
def tables(lake: str | None, fmt: str) -> None:
    """List the tables with their row counts and columns."""
    found = _lake(lake=lake).tables()
    if fmt == "json":
        _echo_json([t.as_dict() for t in found])
        return
    for table in found:
        click.echo(f"{table.name} ({table.rows} rows)")
        click.echo(f"  {', '.join(f'{c.name} {c.type}' for c in table.columns)}")


@main.command()
@lake_option
@handle_errors
def demo(lake: str | None) -> None:
    """Run the whole pipeline against the built-in simulated Spotify API (no credentials, no network)."""
    from .console import TerminalProgress, echo_lines, extract_lines, transform_lines
    from .demo import DEMO_CATALOG, run_demo
    from .query import format_result

    lake = lake or _global_lake() or "./lake"
    click.echo(f"Starting the simulated Spotify Web API on 127.0.0.1 and running the pipeline into {lake} ...")
    with stop_on_signals(), TerminalProgress(DEMO_CATALOG.playlists) as progress:
        result = run_demo(lake, progress)
    echo_lines(extract_lines(result.result.extract.summary), click.echo)
    echo_lines(transform_lines(result.result.transform.detail), click.echo)
    for title, answer in result.answers.items():
        click.echo(f"\n{title}:")
        click.echo(format_result(answer, "table"))
    click.echo(f'\nNext: spotify-pipeline query --lake {lake} "SELECT * FROM songs LIMIT 5"')


@main.command()
@lake_option
@click.option("--raw", "check_raw", is_flag=True, help="Also read back every raw file the manifests list.")
@text_json_option
@handle_errors
def check(lake: str | None, check_raw: bool, fmt: str) -> None:
    """Run the data-quality checks on the published tables (results go to quality_results)."""
    report = _lake(lake=lake).check(raw=check_raw)
    failed = len(report.failed)
    if fmt == "json":
        _echo_json(report.as_dict())
        if report.not_recorded:
            click.echo(f"Error: the results were not recorded in quality_results: {report.not_recorded}", err=True)
        if not report.ok:
            sys.exit(8)
        if report.not_recorded_error is not None:
            sys.exit(report.not_recorded_error.exit_code)
        return
    for result in report.checks:
        mark = "ok  " if result.passed else ("FAIL" if result.severity == "error" else "warn")
        detail = "" if result.passed else f"  ({result.failing_rows} rows)"
        click.echo(f"{mark} {result.name}: {result.description}{detail}")
    for problem in report.raw_problems:
        click.echo(f"FAIL raw zone: {problem}")
    if report.rejected:
        # Set aside, not failed: the rest was published. Listed until a rebuild reads them again.
        click.echo(
            f"warn rejected_records: {report.rejected} raw record(s) set aside by the transform"
            " (`spotify-pipeline transform --rebuild` reads them again after a fix)"
        )
        for line in report.rejected_sample:
            click.echo(f"     {line}")
    click.echo(
        f"{len(report.checks)} checks, {failed} failed"
        + (f"; raw zone: {len(report.raw_problems)} problems" if check_raw else "")
    )
    if report.not_recorded:
        click.echo(f"Error: the results were not recorded in quality_results: {report.not_recorded}", err=True)
    if failed or report.raw_problems:
        sys.exit(8)
    if report.not_recorded_error is not None:
        sys.exit(report.not_recorded_error.exit_code)


@main.command()
@lake_option
@click.option("--limit", type=int, default=20, show_default=True, help="How many recent runs.")
@format_option
@handle_errors
def runs(lake: str | None, limit: int, fmt: str) -> None:
    """List recent runs: status, duration, requests, items, failed checks, and why a run failed."""
    from .checks_cli import recent_runs
    from .query import format_result

    the_lake = _lake(lake=lake)
    if fmt == "json":
        _echo_json([r.as_dict() for r in the_lake.runs(limit)])
        return
    click.echo(format_result(recent_runs(the_lake.catalog, limit), fmt, max_width=60))


@main.command()
@lake_option
@handle_errors
def repair(lake: str | None) -> None:
    """Make a copied or moved lake independent of its original, or register its tables again after
    catalog.db was lost or emptied. Keeps every table's current rows; a healthy lake is left as it is."""
    from .errors import ConfigError
    from .pipeline import lake_parts
    from .repair import repair_lake

    _, catalog = lake_parts(_settings(lake=lake))
    if catalog.remote:
        raise ConfigError("repair works on a local lake", hint="an S3 lake's tables are registered in Glue")
    for line in repair_lake(catalog.root).lines():
        click.echo(line)


def _params(pairs: tuple[str, ...]) -> dict[str, str]:
    from .errors import InputError

    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InputError(f"bad --param {pair!r}", hint="use --param name=value, e.g. --param playlist=ID")
        params[key.strip()] = value.strip()
    return params


@main.command()
@lake_option
@click.option("--list", "list_reports", is_flag=True, help="List the named reports and exit.")
@click.option("--playlist", default=None, help="Only this playlist (ID, URI or URL). [default: all]")
@click.option("--year", type=click.IntRange(1900, 2999), default=None, help="A year in review of your listening.")
@click.option("--from", "start", default=None, help="Listening page from this day (YYYY-MM-DD, UTC, inclusive).")
@click.option("--to", "end", default=None, help="Listening page up to this day (YYYY-MM-DD, UTC, inclusive).")
@click.option("--user", default=None, help="Listening of this user only. [default: every user in the lake]")
@click.option("--include-incognito", is_flag=True, help="Count incognito listens too (left out by default).")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("report.html"),
    show_default=True,
    help="Where to write the HTML report; - for stdout.",
)
@text_json_option
@handle_errors
def report(
    lake: str | None,
    list_reports: bool,
    playlist: str | None,
    year: int | None,
    start: str | None,
    end: str | None,
    user: str | None,
    include_incognito: bool,
    out: Path,
    fmt: str,
) -> None:
    """Write one self-contained HTML report (charts included; opens with no network).

    The playlist report by default; with --year (or --from/--to) the listening page over that period,
    e.g. `report --year 2025 --out wrapped-2025.html`.
    """
    from .reports import LISTENING_ORDER, REPORT_ORDER, all_reports

    if list_reports:
        if fmt == "json":
            from .lake_api import Lake

            _echo_json([r.as_dict() for r in Lake.reports()])
            return
        reports = all_reports()
        for name in (*REPORT_ORDER, *LISTENING_ORDER):
            click.echo(f"{name:<24} {reports[name].title}: {reports[name].description}")
        return
    import datetime as dt

    from .errors import InputError, LakeError
    from .pipeline import lake_parts
    from .query import QueryEngine
    from .reports.html import build_html
    from .reports.listening import build_listening_html
    from .reports.params import parse_date

    listening = year is not None or start is not None or end is not None or user is not None
    if listening and playlist:
        raise InputError("--playlist is for the playlist report", hint="leave it out with --year/--from/--to")
    if year is not None and (start or end):
        raise InputError("--year and --from/--to both given", hint="use one or the other")
    first = dt.date(year, 1, 1) if year else parse_date(start, "from") if start else None
    last = dt.date(year, 12, 31) if year else parse_date(end, "to") if end else None
    _, catalog = lake_parts(_settings(lake=lake))
    with QueryEngine(catalog, in_memory=True) as engine:
        if listening:
            title = f"Your {year} in music" if year else None
            document = build_listening_html(
                engine, start=first, end=last, user=user, include_incognito=include_incognito, title=title
            )
        else:
            document = build_html(engine, playlist)
    if str(out) == "-":
        click.echo(document, nl=False)
        return
    try:
        out.write_text(document, encoding="utf-8")
    except OSError as exc:
        raise LakeError(f"cannot write {out}: {exc.strerror}", hint="choose another --out path") from exc
    click.echo(f"wrote {out} ({len(document.encode()) // 1024} KiB)")


@main.command("graphql-schema")
def graphql_schema() -> None:
    """Print the GraphQL schema (SDL) that `serve` answers at /graphql."""
    from .graphql_api import schema_sdl

    click.echo(schema_sdl())


@main.command()
@lake_option
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Interface to bind; the default serves this machine only."
)
@click.option("--port", type=int, default=8000, show_default=True, help="Port; 0 picks a free one.")
@click.option(
    "--allow-host",
    "allow_hosts",
    multiple=True,
    help="Another name the dashboard answers to in the Host header (e.g. this machine's DNS name). Repeatable.",
)
@click.option(
    "--query-timeout",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Seconds one query may run before it is stopped; 0 = no limit.",
)
@click.option(
    "--memory-limit", default="2GB", show_default=True, help="DuckDB memory limit for the tables and queries."
)
@handle_errors
def serve(
    lake: str | None, host: str, port: int, allow_hosts: tuple[str, ...], query_timeout: float, memory_limit: str
) -> None:
    """Serve a read-only dashboard over the reports, with a JSON API (/api/reports/<name>, /openapi.json).

    Answers GET only, only for Host headers naming this server, never to cross-site requests; SQL runs in
    the same sandbox as `query`.
    """
    from .dashboard import Dashboard
    from .errors import ConfigError
    from .pipeline import lake_parts
    from .query import QueryEngine
    from .transform.runner import duckdb_size

    _, catalog = lake_parts(_settings(lake=lake))
    if catalog.remote:
        raise ConfigError("serve works on a local lake", hint="for an S3 lake use `query --engine athena` or `report`")
    duckdb_size(memory_limit, "--memory-limit")
    QueryEngine(catalog).close()  # fail now, with the usual message, if the lake has no tables
    try:
        dashboard = Dashboard(
            catalog.root,
            host,
            port,
            query_timeout=query_timeout or None,
            memory_limit=memory_limit,
            allowed_hosts=allow_hosts,
        )
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}", hint="try another --port") from exc
    if dashboard.exposed:
        click.echo(
            f"warning: listening on {host}, port {dashboard.port}: every table of the lake (every row, through "
            "/api/query) is readable by anyone who can reach that port; there is no login. "
            "Use the default --host 127.0.0.1 to serve this machine only.",
            err=True,
        )
    click.echo(f"Dashboard on {dashboard.url}  (Ctrl-C to stop)")
    sys.stdout.flush()
    try:
        dashboard.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        dashboard.stop()


@main.command()
@lake_option
@click.option("--table", "table_name", required=True, help="Table to export (see `spotify-pipeline tables`).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["parquet", "csv", "json"]),
    default="parquet",
    show_default=True,
    help="File format; json is newline-delimited.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Output file; - for stdout. [default: <table>.<format>]",
)
@handle_errors
def export(lake: str | None, table_name: str, fmt: str, out: Path | None) -> None:
    """Export a table's current rows to Parquet, CSV or JSON lines (the CSV and JSON of `query`)."""
    target = out or Path(f"{table_name}.{'jsonl' if fmt == 'json' else fmt}")
    result = _lake(lake=lake).export(table_name, target, format=fmt)
    click.echo(
        f"wrote {result.rows} rows of {table_name} to {'stdout' if str(target) == '-' else target}",
        err=str(target) == "-",
    )


@main.command()
@click.option("--no-browser", is_flag=True, help="Print the login URL instead of opening a browser.")
@click.option(
    "--port",
    type=int,
    default=8888,
    show_default=True,
    help="Loopback port for the callback; register http://127.0.0.1:PORT/callback in your app.",
)
@click.option("--timeout", type=float, default=300.0, show_default=True, help="Seconds to wait for the login.")
@handle_errors
def login(no_browser: bool, port: int, timeout: float) -> None:
    """Log in as a Spotify user (Authorization Code with PKCE) and save the login for later runs.

    Needed by Development Mode apps to read the user's own and collaborative playlists, liked songs,
    recently played and top items. Uses SPOTIFY_CLIENT_ID (no secret needed).
    """
    from .extract.user_auth import TokenStore
    from .extract.user_auth import login as run_login

    settings = _settings()
    store = TokenStore()

    def show(url: str) -> None:
        click.echo("Open this URL to log in:" if no_browser else "Opening the browser to log in; if it does not open:")
        click.echo(f"  {url}")

    run_login(
        settings.accounts_url,
        settings.client_id,
        store,
        port=port,
        open_browser=not no_browser,
        show_url=show,
        timeout=timeout,
    )
    click.echo(f"Logged in; the login is saved in {store.path} (readable only by you).")


@main.command()
@handle_errors
def logout() -> None:
    """Forget the saved user login."""
    from .extract.user_auth import TokenStore

    store = TokenStore()
    store.delete()
    click.echo(f"Removed {store.path}.")


@main.command()
@text_json_option
@handle_errors
def whoami(fmt: str) -> None:
    """Show the user behind the credentials, the app's access mode, and what that mode can extract."""
    import dataclasses

    from .access import CAN, CANNOT
    from .access import whoami as run_whoami

    found = run_whoami(_settings())
    if fmt == "json":
        _echo_json({**dataclasses.asdict(found), "can": CAN[found.mode], "cannot": CANNOT[found.mode]})
        return
    for line in found.lines():
        click.echo(line)


@main.command("import-history")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--user", default=None, help="Whose history. [default: the legacy files' username, else the login]")
@lake_option
@handle_errors
def import_history(path: Path, user: str | None, lake: str | None) -> None:
    """Import a Spotify data download (my_spotify_data.zip, its folder, or one JSON file) into `listens`.

    Reads the extended streaming history, the legacy endsong files and the account data's
    StreamingHistory files; IP addresses and user agents are dropped before anything is written.
    """
    from .history.importer import import_lines

    result = _lake(lake=lake).import_history(path, user=user)
    for line in import_lines(result):
        click.echo(line)


@main.command()
@lake_option
@click.option("--playlist", default=None, help="Continue this playlist (ID, URI or URL).")
@click.option("--for-me", "for_me", is_flag=True, help="For the user: from liked songs, top tracks and listens.")
@click.option("--user", default=None, help="With --for-me: whose (default: the user with most data in the lake).")
@click.option("--evaluate", "evaluate_", is_flag=True, help="Hold out playlist tracks and score the model.")
@click.option("--n", "n", type=click.IntRange(1, 500), default=50, show_default=True, help="How many songs.")
@click.option("--seed", type=int, default=0, show_default=True, help="With --evaluate: seed of the split.")
@click.option("--rebuild", is_flag=True, help="Rebuild the model first (it is rebuilt anyway when the lake changed).")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True, help="Output format."
)
@handle_errors
def recommend(
    lake: str | None,
    playlist: str | None,
    for_me: bool,
    user: str | None,
    evaluate_: bool,
    n: int,
    seed: int,
    rebuild: bool,
    fmt: str,
) -> None:
    """Recommend songs from what the lake holds (no API requests): songs that continue a playlist
    (--playlist), songs for you (--for-me), or the held-out evaluation (--evaluate) of the model against
    a popularity baseline, RecSys Challenge 2018 style. Results are stored in the `recommendations` table."""
    from . import recommend as rec
    from .errors import InputError
    from .ids import parse_playlist_ref
    from .pipeline import lake_lock, lake_parts

    if sum((playlist is not None, for_me, evaluate_)) != 1:
        raise InputError("give exactly one of --playlist, --for-me, --evaluate", hint="spotify-pipeline recommend -h")
    storage, catalog = lake_parts(_settings(lake=lake))
    if not catalog.exists() or "playlist_songs" not in catalog.table_names():
        raise InputError(f"no tables in the lake at {catalog.location}", hint="run `spotify-pipeline run` first")
    if evaluate_:
        result = rec.evaluate_lake(catalog, seed=seed)
        if fmt == "json":
            click.echo(
                json.dumps(
                    [
                        {**c.__dict__, "model": c.model.__dict__, "baseline": c.baseline.__dict__}
                        for c in result.categories
                    ],
                    indent=2,
                )
            )
        else:
            click.echo(rec.format_evaluation(result))
        return
    with lake_lock(storage, catalog, "recommend"):
        if for_me:
            found = rec.recommend_for_user(storage, catalog, user, n, rebuild=rebuild)
        else:
            found = rec.recommend_for_playlist(storage, catalog, parse_playlist_ref(playlist or ""), n, rebuild=rebuild)
        rec.save_recommendations(catalog, found)
    if fmt == "json":
        click.echo(json.dumps(rec.as_json(found), indent=2, ensure_ascii=False))
        return
    click.echo(f"{len(found.items)} songs for {found.target_type} {found.target_name} (from {found.seeds} seed songs):")
    for r in found.items:
        click.echo(f"{r.rank:>3}. {r.song or r.song_id} - {r.artist or '?'}  [{r.score:.3f}] {r.reason}")
