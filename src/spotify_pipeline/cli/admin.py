"""`tables`, `check`, `runs`, `repair`, `login`, `logout`, `whoami`: looking after a lake and its credentials."""

from __future__ import annotations

import sys

import click

from .common import (
    cli_settings,
    echo_json,
    format_option,
    handle_errors,
    lake_option,
    open_lake,
    text_json_option,
)


@click.command()
@lake_option
@text_json_option
@handle_errors
def tables(lake: str | None, fmt: str) -> None:
    """List the tables with their row counts and columns."""
    found = open_lake(lake=lake).tables()
    if fmt == "json":
        echo_json([t.as_dict() for t in found])
        return
    for table in found:
        click.echo(f"{table.name} ({table.rows} rows)")
        click.echo(f"  {', '.join(f'{c.name} {c.type}' for c in table.columns)}")


@click.command()
@lake_option
@click.option("--raw", "check_raw", is_flag=True, help="Also read back every raw file the manifests list.")
@text_json_option
@handle_errors
def check(lake: str | None, check_raw: bool, fmt: str) -> None:
    """Run the data-quality checks on the published tables (results go to quality_results)."""
    report = open_lake(lake=lake).check(raw=check_raw)
    failed = len(report.failed)
    if fmt == "json":
        echo_json(report.as_dict())
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


@click.command()
@lake_option
@click.option("--limit", type=int, default=20, show_default=True, help="How many recent runs.")
@format_option
@handle_errors
def runs(lake: str | None, limit: int, fmt: str) -> None:
    """List recent runs: status, duration, requests, items, failed checks, and why a run failed."""
    import dataclasses

    from ..query.engine import QueryResult, format_result
    from ..results import RunInfo

    runs = open_lake(lake=lake).runs(limit)
    if fmt == "json":
        echo_json([r.as_dict() for r in runs])
        return
    columns = [f.name for f in dataclasses.fields(RunInfo)]
    rows = [tuple(getattr(r, c) for c in columns) for r in runs]
    click.echo(format_result(QueryResult(columns, rows), fmt, max_width=60))


@click.command()
@lake_option
@click.option(
    "--keep-days",
    type=float,
    default=None,
    help="Days of table snapshots kept for time travel. [default: table_history_days, 0.25 (6 hours)]",
)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True, help="Output format."
)
@handle_errors
def maintain(lake: str | None, keep_days: float | None, fmt: str) -> None:
    """Compact small table files (folding deleted rows in), expire old snapshots and delete orphan files.
    Under the lake lock. Run it daily, or after many runs: each run leaves files and snapshots behind."""
    result = open_lake(lake=lake).maintain(keep_days=keep_days)
    if fmt == "json":
        echo_json(result.as_dict())
        return
    click.echo(
        f"compacted {result.files_compacted} files into {result.files_written} "
        f"({', '.join(result.tables_compacted) or 'no table'}), dropping {result.delete_files_dropped} delete files; "
        f"expired {result.expiry.snapshots} snapshots "
        f"({result.expiry.files_deleted} files, {result.expiry.data_bytes_deleted:,} data bytes); deleted "
        f"{result.orphans_deleted} orphan files ({result.orphan_bytes_deleted:,} bytes) in {result.seconds:.1f}s"
    )


@click.command()
@lake_option
@handle_errors
def repair(lake: str | None) -> None:
    """Make a copied or moved lake independent of its original, or register its tables again after
    catalog.db was lost or emptied. Keeps every table's current rows; a healthy lake is left as it is."""
    for line in open_lake(lake=lake).repair().lines():
        click.echo(line)


@click.command()
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
    from ..extract.user_auth import TokenStore
    from ..extract.user_auth import login as run_login

    settings = cli_settings()
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


@click.command()
@handle_errors
def logout() -> None:
    """Forget the saved user login."""
    from ..extract.user_auth import TokenStore

    store = TokenStore()
    store.delete()
    click.echo(f"Removed {store.path}.")


@click.command()
@text_json_option
@handle_errors
def whoami(fmt: str) -> None:
    """Show the user behind the credentials, the app's access mode, and what that mode can extract."""
    import dataclasses

    from ..extract.access import CAN, CANNOT
    from ..extract.access import whoami as run_whoami

    found = run_whoami(cli_settings())
    if fmt == "json":
        echo_json({**dataclasses.asdict(found), "can": CAN[found.mode], "cannot": CANNOT[found.mode]})
        return
    for line in found.lines():
        click.echo(line)
