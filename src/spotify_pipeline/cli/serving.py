"""`serve` and `graphql-schema`: the local dashboard, JSON API and GraphQL."""

from __future__ import annotations

import sys

import click

from .common import (
    handle_errors,
    lake_option,
    open_lake,
)


@click.command()
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
    dashboard = open_lake(lake=lake).dashboard(
        host, port, query_timeout=query_timeout or None, memory_limit=memory_limit, allowed_hosts=allow_hosts
    )
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


@click.command("graphql-schema")
def graphql_schema() -> None:
    """Print the GraphQL schema (SDL) that `serve` answers at /graphql."""
    from ..serve.graphql_schema import schema_sdl

    click.echo(schema_sdl())
