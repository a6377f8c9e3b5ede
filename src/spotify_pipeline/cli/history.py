"""`import-history` and `poll`: listening history from a data download, and recently played as it happens."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .common import (
    cli_settings,
    handle_errors,
    lake_option,
    open_lake,
    stop_on_signals,
)


@click.command("import-history")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--user", default=None, help="Whose history. [default: the legacy files' username, else the login]")
@lake_option
@handle_errors
def import_history(path: Path, user: str | None, lake: str | None) -> None:
    """Import a Spotify data download (my_spotify_data.zip, its folder, or one JSON file) into `listens`.

    Reads the extended streaming history, the legacy endsong files and the account data's
    StreamingHistory files; IP addresses and user agents are dropped before anything is written.
    """
    from ..history.importer import import_lines

    result = open_lake(lake=lake).import_history(path, user=user)
    for line in import_lines(result.detail):
        click.echo(line)


@click.command()
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
    from ..extract.poll import parse_every
    from ..lake_api import Lake

    seconds = parse_every(every)
    the_lake = Lake.open(settings=cli_settings(lake=lake, auth=auth, config=config))
    poller = the_lake.poller()
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
        the_lake.close()
    echo(f"poll stopped after {polls} polls")
