"""Listened tracks become `songs` rows, and `run` fills in their albums and artists from `/tracks` under a request
budget per run (most-played first, resumed by the next run), over real HTTP against the simulator in Development
Mode (batch lookups answer 403, so every track costs one `/tracks/{id}` request)."""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

from spotify_pipeline import pipeline
from spotify_pipeline.config import load_settings
from spotify_pipeline.errors import ConfigError
from spotify_pipeline.history.importer import import_history
from spotify_pipeline.query.engine import QueryEngine
from spotify_pipeline.simulator.faults import Fault, FaultPlan
from spotify_pipeline.simulator.history import write_export
from spotify_pipeline.tables.catalog import Catalog

from ..conftest import SimulatorFactory, api_get, cli, client_token, comparable_tables, settings_for

USER = "alice"
BUDGET = 4


def rows(lake: Path, sql: str) -> list[tuple[Any, ...]]:
    with QueryEngine(Catalog(lake)) as engine:
        return [tuple(r) for r in engine.execute(sql).rows]


def wanted_order(lake: Path) -> list[str]:
    """Listened songs without an album, most-played first (ties by id): the order the budget takes them in."""
    return [
        r[0]
        for r in rows(
            lake,
            """SELECT l.song_id FROM listens l JOIN songs s USING (song_id) WHERE s.album_id IS NULL
               GROUP BY l.song_id ORDER BY count(*) DESC, l.song_id""",
        )
    ]


def track_requests(server: Any) -> collections.Counter[str]:
    return collections.Counter(server.stats.ids_by_route.get("track", {}))


def test_listened_tracks_are_songs_and_are_enriched_under_a_budget(
    make_simulator: SimulatorFactory, tmp_path: Path
) -> None:
    server = make_simulator(playlists=2, items_per_playlist=10, mode="development")
    lake = tmp_path / "lake"
    settings = settings_for(server, lake, track_budget=BUDGET)
    export = write_export(server.catalog, USER, tmp_path / "a.zip", plays=90, per_file=30)
    import_history(settings, export.path, user=USER)
    # Every listened track is a song at once, named from the export, its album and artist unknown yet.
    listened = {r[0] for r in rows(lake, "SELECT DISTINCT song_id FROM listens WHERE song_id IS NOT NULL")}
    assert listened and listened <= {r[0] for r in rows(lake, "SELECT song_id FROM songs")}
    assert rows(lake, "SELECT count(*) FROM songs WHERE name IS NULL") == [(0,)]
    order = wanted_order(lake)
    assert set(order) == listened and len(order) > 2 * BUDGET

    server.stats.reset()
    first = pipeline.run(settings, [])
    assert first.status == "succeeded"
    assert track_requests(server) == collections.Counter(order[:BUDGET])  # the most played, each once
    assert server.stats.by_route["tracks"] <= 1  # at most one batch probe, refused in Development Mode

    server.stats.reset()
    pipeline.run(settings, [])  # the next run goes on where this one stopped
    assert track_requests(server) == collections.Counter(order[BUDGET : 2 * BUDGET])
    assert wanted_order(lake) == order[2 * BUDGET :]

    big = settings_for(server, lake, track_budget=1000)
    pipeline.run(big, [])
    # Every listened track the catalog knows now has its album; the rest (unknown IDs in the export) answered
    # 404 and are not asked for again within the enrichment TTL.
    token = client_token(server)
    assert all(api_get(server, f"/tracks/{t}", token).status_code == 404 for t in wanted_order(lake))
    assert len(wanted_order(lake)) < len(order) // 4
    server.stats.reset()
    pipeline.run(big, [])
    assert track_requests(server) == collections.Counter()  # nothing left: no request

    joined = rows(
        lake,
        """SELECT count(*), count(a.name), count(ar.name) FROM listens l JOIN songs s USING (song_id)
           JOIN albums a ON a.album_id = s.album_id JOIN artists ar ON ar.artist_id = s.artist_id""",
    )
    assert joined[0][0] > 0 and joined[0][0] == joined[0][1] == joined[0][2]
    assert rows(lake, "SELECT count(*) FROM listens WHERE song_id IS NOT NULL")[0][0] == joined[0][0]

    before = comparable_tables(lake)
    assert cli("transform", "--rebuild", "--lake", str(lake)).returncode == 0
    assert comparable_tables(lake) == before


def test_a_playlist_observation_is_never_overwritten_by_a_listened_only_row(
    make_simulator: SimulatorFactory, tmp_path: Path
) -> None:
    server = make_simulator(playlists=2, items_per_playlist=15)
    lake = tmp_path / "lake"
    settings = settings_for(server, lake, track_budget=0)
    pipeline.run(settings, server.playlist_ids())
    before = dict(rows(lake, "SELECT song_id, album_id FROM songs"))
    export = write_export(server.catalog, USER, tmp_path / "a.zip", plays=60, per_file=30)
    import_history(settings, export.path, user=USER)
    after = dict(rows(lake, "SELECT song_id, album_id FROM songs"))
    assert all(after[s] == album for s, album in before.items())  # richer rows kept
    assert rows(lake, "SELECT count(*) FROM songs WHERE last_seen_at < TIMESTAMPTZ '2000-01-01'")[0][0] == (
        len(after) - len(before)
    )
    server.stats.reset()
    pipeline.run(settings, [])  # budget 0: no track request
    assert track_requests(server) == collections.Counter()


def test_a_long_retry_after_stops_only_the_track_step(make_simulator: SimulatorFactory, tmp_path: Path) -> None:
    faults = FaultPlan()
    server = make_simulator(faults=faults, playlists=2, items_per_playlist=10, mode="development")
    lake = tmp_path / "lake"
    settings = settings_for(server, lake, track_budget=BUDGET)
    export = write_export(server.catalog, USER, tmp_path / "a.zip", plays=60, per_file=30)
    import_history(settings, export.path, user=USER)
    order = wanted_order(lake)
    faults.add(Fault("429", path_prefix="/v1/tracks/", retry_after=3600))
    report = pipeline.run(settings, server.playlist_ids())
    assert report.status == "succeeded"  # the playlists are published; the optional step waits for next run
    assert report.extract is not None and report.extract.tracks_stopped
    assert rows(lake, "SELECT count(*) FROM playlists")[0][0] == 2
    left = wanted_order(lake)
    assert set(order[:BUDGET]) & set(left)  # the one refused with 429 is still to do
    server.stats.reset()
    pipeline.run(settings, [])
    assert track_requests(server) == collections.Counter(left[:BUDGET])


def test_the_budget_is_a_validated_setting(tmp_path: Path) -> None:
    assert load_settings({"lake": str(tmp_path)}, env={}).track_budget == 200
    assert load_settings({"lake": str(tmp_path)}, env={"SPOTIFY_PIPELINE_TRACK_BUDGET": "0"}).track_budget == 0
    for bad in ("-1", "1.5", "lots"):
        try:
            load_settings({"lake": str(tmp_path)}, env={"SPOTIFY_PIPELINE_TRACK_BUDGET": bad})
        except ConfigError as exc:
            assert "SPOTIFY_PIPELINE_TRACK_BUDGET" in str(exc)
        else:
            raise AssertionError(f"{bad} accepted")
