"""`recommend`: songs from what the lake holds (no API requests)."""

from __future__ import annotations

import json

import click

from .common import (
    handle_errors,
    lake_option,
    open_lake,
)


@click.command()
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
    from .. import recommend as rec
    from ..errors import InputError

    if sum((playlist is not None, for_me, evaluate_)) != 1:
        raise InputError("give exactly one of --playlist, --for-me, --evaluate", hint="spotify-pipeline recommend -h")
    the_lake = open_lake(lake=lake)
    if evaluate_:
        result = the_lake.evaluate_recommendations(seed=seed)
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
    found = the_lake.recommend(playlist, for_user=for_me, user=user, n=n, rebuild=rebuild)
    if fmt == "json":
        click.echo(json.dumps(rec.as_json(found), indent=2, ensure_ascii=False))
        return
    click.echo(f"{len(found.items)} songs for {found.target_type} {found.target_name} (from {found.seeds} seed songs):")
    for r in found.items:
        click.echo(f"{r.rank:>3}. {r.song or r.song_id} - {r.artist or '?'}  [{r.score:.3f}] {r.reason}")
