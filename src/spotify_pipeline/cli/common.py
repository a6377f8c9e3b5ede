"""Helpers every command group shares: error handling, signal handling, common options and settings."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import click

from ..errors import Interrupted, PipelineError

F = TypeVar("F", bound=Callable[..., Any])


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


def cli_settings(**flags: Any) -> Any:
    from ..config import load_settings

    config_file = flags.pop("config", None)
    if flags.get("lake") is None:
        flags["lake"] = global_lake()
    return load_settings(flags, config_file=Path(config_file) if config_file else None)


def global_lake() -> str | None:
    ctx = click.get_current_context(silent=True)
    return ctx.find_root().params.get("global_lake") if ctx is not None else None


def open_lake(**flags: Any) -> Any:
    """The `Lake` for these flags (settings as `cli_settings`)."""
    from ..lake_api import Lake

    return Lake.open(settings=cli_settings(**flags))


def echo_json(value: Any) -> None:
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


def playlist_ids(playlists: tuple[str, ...], playlists_file: Path | None, sources: tuple[str, ...] = ()) -> list[str]:
    import os

    from ..errors import InputError
    from ..ids import parse_playlist_refs, read_playlists_file

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


def extract_settings(opts: dict[str, Any]) -> Any:
    return cli_settings(
        lake=opts["lake"],
        concurrency=opts["concurrency"],
        rate_limit=opts["rate_limit"],
        max_retry_wait=opts["max_retry_wait"],
        enrich_ttl_days=opts["enrich_ttl_days"],
        auth=opts["auth"],
        config=opts["config"],
    )


def exit_for(status: str) -> None:
    if status == "partial":
        click.echo("Error: some playlists failed (see above); the others were extracted", err=True)
        sys.exit(3)
    if status == "stopped":
        sys.exit(5)
    if status == "failed":
        sys.exit(1)


def parse_params(pairs: tuple[str, ...]) -> dict[str, str]:
    from ..errors import InputError

    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InputError(f"bad --param {pair!r}", hint="use --param name=value, e.g. --param playlist=ID")
        params[key.strip()] = value.strip()
    return params
