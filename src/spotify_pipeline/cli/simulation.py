"""`simulate` and `demo`: the simulated Spotify Web API, alone or with a whole run against it."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

import click

from .common import (
    global_lake,
    handle_errors,
    lake_option,
    stop_on_signals,
)


@click.command()
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
    from ..errors import ConfigError
    from ..simulator import Catalog, CatalogConfig, FaultPlan, SimulatedSpotify

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


@click.command()
@lake_option
@handle_errors
def demo(lake: str | None) -> None:
    """Run the whole pipeline against the built-in simulated Spotify API (no credentials, no network)."""
    from ..query.engine import format_result
    from ..simulator.demo import DEMO_CATALOG, run_demo
    from .console import TerminalProgress, echo_lines, extract_lines, transform_lines

    lake = lake or global_lake() or "./lake"
    click.echo(f"Starting the simulated Spotify Web API on 127.0.0.1 and running the pipeline into {lake} ...")
    with stop_on_signals(), TerminalProgress(DEMO_CATALOG.playlists) as progress:
        result = run_demo(lake, progress)
    echo_lines(extract_lines(result.result.extract.summary), click.echo)
    echo_lines(transform_lines(result.result.transform.detail), click.echo)
    for title, answer in result.answers.items():
        click.echo(f"\n{title}:")
        click.echo(format_result(answer, "table"))
    click.echo(f'\nNext: spotify-pipeline query --lake {lake} "SELECT * FROM songs LIMIT 5"')
