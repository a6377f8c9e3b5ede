"""The command line: parse options, call the library, turn library errors into one line and an exit code."""

from __future__ import annotations

import functools
import json
import logging
import signal
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from . import __version__
from .errors import PipelineError

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("spotify_pipeline")


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": self.formatTime(record),
            "level": record.levelname.lower(),
            "msg": record.getMessage(),
        }
        payload.update(getattr(record, "fields", {}))
        return json.dumps(payload, ensure_ascii=False)


def _setup_logging(log_format: str, verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _JsonFormatter() if log_format == "json" else logging.Formatter("%(levelname)s %(message)s")
    )
    root = logging.getLogger("spotify_pipeline")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO if log_format == "json" else logging.WARNING)


def handle_errors(func: F) -> F:
    """Library errors become `Error: <one line>` and their exit code; --debug shows the traceback."""

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
        except KeyboardInterrupt:
            click.echo("Interrupted; everything written so far is kept. Re-run to continue.", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="spotify-pipeline")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Log lines as text or as JSON objects (for log shippers).",
)
def main(debug: bool, log_format: str) -> None:
    """Spotify playlists -> raw zone -> Iceberg tables -> SQL.

    Start with `spotify-pipeline demo`: it needs no credentials and no network.
    """
    _setup_logging(log_format, debug)


@main.command()
@click.option("--port", type=int, default=0, show_default=True, help="Port on 127.0.0.1; 0 picks a free one.")
@click.option("--seed", type=int, default=7, show_default=True, help="Seed of the generated catalog.")
@click.option("--playlists", type=int, default=5, show_default=True, help="Number of playlists.")
@click.option(
    "--items-per-playlist", type=int, default=40, show_default=True, help="Mean items per playlist."
)
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
@click.option(
    "--client-secret", default="sim-client-secret", show_default=True, help="Accepted client secret."
)
@click.option(
    "--token-ttl", type=float, default=3600.0, show_default=True, help="Access token lifetime, seconds."
)
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
@click.option(
    "--legacy-items", is_flag=True, help="Serve only the pre-2026 /tracks endpoint and `track` key."
)
@handle_errors
def simulate(**options: Any) -> None:
    """Run the simulated Spotify Web API on 127.0.0.1 until interrupted.

    Accounts service at http://127.0.0.1:PORT/api/token, Web API at http://127.0.0.1:PORT/v1.
    Admin: GET /_admin/stats, POST /_admin/faults, POST /_admin/mutate, POST /_admin/expire-tokens.
    """
    from .simulator import Catalog, CatalogConfig, FaultPlan, SimulatedSpotify

    catalog = Catalog(
        CatalogConfig(
            seed=options["seed"],
            playlists=options["playlists"],
            items_per_playlist=options["items_per_playlist"],
            large_playlist_items=options["large_playlist_items"],
            quirk_rate=options["quirk_rate"],
            mode=options["mode"],
        )
    )
    faults = FaultPlan(
        latency_ms=options["latency_ms"],
        rate_limit=options["rate_limit"],
        rate_window_s=options["rate_window"],
        error_rate=options["error_rate"],
        drop_rate=options["drop_rate"],
    )
    server = SimulatedSpotify(
        catalog,
        port=options["port"],
        client_id=options["client_id"],
        client_secret=options["client_secret"],
        token_ttl=options["token_ttl"],
        faults=faults,
        legacy_items=options["legacy_items"],
    )
    click.echo(f"Simulated Spotify Web API listening on {server.base_url}")
    click.echo(f"  export SPOTIFY_API_URL={server.api_url}")
    click.echo(f"  export SPOTIFY_ACCOUNTS_URL={server.accounts_url}")
    click.echo(f"  export SPOTIFY_CLIENT_ID={options['client_id']}  # and SPOTIFY_CLIENT_SECRET")
    click.echo(
        f"  playlists: {' '.join(server.playlist_ids()[:5])}{' ...' if options['playlists'] > 5 else ''}"
    )
    sys.stdout.flush()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
