"""`query`, `report`, `export`: reading the tables (SQL, named reports, files)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .common import (
    cli_settings,
    echo_json,
    format_option,
    handle_errors,
    lake_option,
    open_lake,
    parse_params,
    text_json_option,
)


@click.command()
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
    help="Stop the query after this many seconds; 0 = no limit (athena: 300 s).",
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
    from ..errors import InputError
    from ..query.engine import format_result

    text = sql_file.read() if sql_file else sql
    if report_name and text:
        raise click.UsageError("give either SQL or --report NAME, not both")
    if not text and not report_name:
        raise InputError("no SQL given", hint='spotify-pipeline query "SELECT count(*) FROM songs", or --report NAME')
    settings = cli_settings(lake=lake)
    from ..lake_api import Lake

    opened = Lake.open(settings=settings)
    if engine == "athena":
        from ..reports import get_report

        sql_text = get_report(report_name).render(parse_params(params)) if report_name else (text or "")
        result = opened.athena(sql_text, **({"timeout": timeout} if timeout else {}))
        click.echo(format_result(result, fmt))
        return
    if report_name:
        result = opened.report(report_name, **parse_params(params))
    else:
        result = opened.rows(text or "", timeout=timeout or None)
    click.echo(format_result(result, fmt))


@click.command()
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
    from ..reports import LISTENING_ORDER, REPORT_ORDER, all_reports

    if list_reports:
        if fmt == "json":
            from ..lake_api import Lake

            echo_json([r.as_dict() for r in Lake.reports()])
            return
        reports = all_reports()
        for name in (*REPORT_ORDER, *LISTENING_ORDER):
            click.echo(f"{name:<24} {reports[name].title}: {reports[name].description}")
        return
    import datetime as dt

    from ..errors import InputError, LakeError
    from ..reports.html import build_html
    from ..reports.listening import build_listening_html
    from ..reports.params import parse_date

    listening = year is not None or start is not None or end is not None or user is not None
    if listening and playlist:
        raise InputError("--playlist is for the playlist report", hint="leave it out with --year/--from/--to")
    if year is not None and (start or end):
        raise InputError("--year and --from/--to both given", hint="use one or the other")
    first = dt.date(year, 1, 1) if year else parse_date(start, "from") if start else None
    last = dt.date(year, 12, 31) if year else parse_date(end, "to") if end else None
    with open_lake(lake=lake).engine(in_memory=True) as engine:
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


@click.command()
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
    result = open_lake(lake=lake).export(table_name, target, format=fmt)
    click.echo(
        f"wrote {result.rows} rows of {table_name} to {'stdout' if str(target) == '-' else target}",
        err=str(target) == "-",
    )
