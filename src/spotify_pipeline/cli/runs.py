"""`extract`, `transform`, `run`: the commands that change the lake's tables from the API or the raw zone."""

from __future__ import annotations

from typing import Any

import click

from .common import (
    echo_json,
    exit_for,
    extract_options,
    extract_settings,
    handle_errors,
    lake_option,
    open_lake,
    playlist_ids,
    stop_on_signals,
    text_json_option,
)


@click.command()
@extract_options
@text_json_option
@handle_errors
def extract(**opts: Any) -> None:
    """Extract playlists into the raw zone (no tables are changed).

    Only playlists whose snapshot_id changed since the last run are fetched again, unless --full.
    Credentials: SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET.
    """
    from ..lake_api import Lake
    from .console import TerminalProgress, echo_lines, extract_lines

    ids = playlist_ids(opts["playlists"], opts["playlists_file"], opts["sources"])
    lake = Lake.open(settings=extract_settings(opts))
    with stop_on_signals(), TerminalProgress(len(ids)) as progress:
        result = lake.extract(ids, full=opts["full"], progress=progress, sources=opts["sources"])
    if opts["fmt"] == "json":
        echo_json(result.as_dict())
    else:
        echo_lines(extract_lines(result.summary), click.echo)
    exit_for(result.status)


@click.command()
@lake_option
@click.option("--rebuild", is_flag=True, help="Recreate every table from the raw zone alone.")
@text_json_option
@handle_errors
def transform(lake: str | None, rebuild: bool, fmt: str) -> None:
    """Transform raw runs not yet processed into the tables (idempotent)."""
    from .console import echo_lines, history_lines, transform_lines

    the_lake = open_lake(lake=lake)
    with stop_on_signals():
        result = the_lake.transform(rebuild=rebuild)
    if fmt == "json":
        echo_json(result.as_dict())
        return
    echo_lines(transform_lines(result.detail) + history_lines(result.history), click.echo)


@click.command()
@extract_options
@text_json_option
@handle_errors
def run(**opts: Any) -> None:
    """Extract, then transform: the everyday command, and what a scheduler calls."""
    from ..lake_api import Lake
    from .console import TerminalProgress, echo_lines, extract_lines, history_lines, transform_lines

    ids = playlist_ids(opts["playlists"], opts["playlists_file"], opts["sources"])
    lake = Lake.open(settings=extract_settings(opts))
    with stop_on_signals(), TerminalProgress(len(ids)) as progress:
        result = lake.run(ids, full=opts["full"], progress=progress, sources=opts["sources"])
    if opts["fmt"] == "json":
        echo_json(result.as_dict())
    else:
        echo_lines(extract_lines(result.extract.summary), click.echo)
        echo_lines(transform_lines(result.transform.detail) + history_lines(result.transform.history), click.echo)
    exit_for(result.status)
