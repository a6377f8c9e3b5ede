"""The command line: parse options, call the library, turn library errors into one line and an exit code.

This module holds the `spotify-pipeline` group (global options, logging, options accepted after the command);
each command group lives in its own module (`runs`, `history`, `queries`, `admin`, `serving`, `simulation`,
`recommend`) and shares `common` (error and signal handling, shared options)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping

import click

from .. import __version__
from . import admin, history, queries, recommend, runs, serving, simulation

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


# One module per command group; `--help` lists the commands alphabetically whatever the order here.
COMMANDS: tuple[click.Command, ...] = (
    runs.extract,
    runs.transform,
    runs.run,
    history.import_history,
    history.poll,
    queries.query,
    queries.report,
    queries.export,
    admin.tables,
    admin.check,
    admin.runs,
    admin.repair,
    admin.maintain,
    admin.login,
    admin.logout,
    admin.whoami,
    serving.serve,
    serving.graphql_schema,
    simulation.simulate,
    simulation.demo,
    recommend.recommend,
)
for _command in COMMANDS:
    main.add_command(_command)
