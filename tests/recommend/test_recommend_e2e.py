"""End to end: a lake extracted over HTTP from the simulator's structured catalog, then `recommend`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spotify_pipeline import pipeline
from spotify_pipeline.errors import InputError
from spotify_pipeline.query.engine import QueryEngine
from spotify_pipeline.recommend.evaluate import CATEGORIES
from spotify_pipeline.simulator import SimulatedSpotify
from spotify_pipeline.tables.catalog import Catalog

from ..conftest import SimulatorFactory, cli, settings_for, sim_env


@pytest.fixture(scope="module")
def taste_lake(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SimulatedSpotify, list[str]]:
    from spotify_pipeline.simulator import Catalog as SimCatalog
    from spotify_pipeline.simulator import CatalogConfig

    lake = tmp_path_factory.mktemp("recommend") / "lake"
    server = SimulatedSpotify(SimCatalog(CatalogConfig(seed=2026, playlists=250, items_per_playlist=100, taste=True)))
    server.start()
    ids = server.playlist_ids()
    pipeline.run(settings_for(server, lake), ids)
    yield lake, server, ids
    server.stop()


def test_recommend_continues_a_playlist_with_reasons(taste_lake: tuple[Path, SimulatedSpotify, list[str]]) -> None:
    lake, server, ids = taste_lake
    env = sim_env(server, lake)
    done = cli("recommend", "--playlist", f"spotify:playlist:{ids[3]}", "--n", "20", "--format", "json", env=env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    songs = [r["song_id"] for r in result["recommendations"]]
    assert len(songs) == 20 == len(set(songs))
    with QueryEngine(Catalog(lake)) as engine:
        members = {
            r[0] for r in engine.execute(f"SELECT song_id FROM playlist_songs WHERE playlist_id = '{ids[3]}'").rows
        }
        stored = engine.execute(
            f"SELECT rank, song_id, reason FROM recommendations WHERE target_id = '{ids[3]}' ORDER BY rank"
        ).rows
    assert not set(songs) & members
    assert all(r["reason"].startswith("often together with ") for r in result["recommendations"][:5])
    assert [s for _, s, _ in stored] == songs
    # the table output and the named report show the same list
    table = cli("recommend", "--playlist", ids[3], "--n", "5", env=env)
    assert table.returncode == 0 and "often together with" in table.stdout
    report = cli("query", "--report", "recommendations", "--param", f"playlist={ids[3]}", env=env)
    assert report.returncode == 0 and "often together with" in report.stdout


def test_a_loaded_recommender_answers_like_the_one_shot_command(
    taste_lake: tuple[Path, SimulatedSpotify, list[str]],
) -> None:
    """The long-lived `Recommender` (model loaded once) and the one-shot function (model rows read per
    question) rank the same songs with the same reasons, for playlists of any length."""
    from spotify_pipeline.lake import LocalStorage
    from spotify_pipeline.recommend import Recommender, recommend_for_playlist

    lake, _, ids = taste_lake
    storage, catalog = LocalStorage(lake), Catalog(lake)
    with Recommender(storage, catalog) as recommender:
        assert recommender.refresh() is False  # nothing changed since it was loaded
        for pid in ids[:4]:
            loaded = recommender.for_playlist(pid, 30)
            one_shot = recommend_for_playlist(storage, catalog, pid, 30)
            assert [(r.song_id, r.reason, r.score) for r in loaded.items] == [
                (r.song_id, r.reason, r.score) for r in one_shot.items
            ]
            assert loaded.target_name == one_shot.target_name and loaded.seeds == one_shot.seeds > 0
        with pytest.raises(InputError, match="is not in the lake"):
            recommender.for_playlist("0000000000000000000000", 5)


def test_evaluate_prints_every_category_and_beats_popularity(
    taste_lake: tuple[Path, SimulatedSpotify, list[str]],
) -> None:
    lake, server, _ = taste_lake
    done = cli("recommend", "--evaluate", "--format", "json", env=sim_env(server, lake))
    assert done.returncode == 0, done.stderr
    categories = json.loads(done.stdout)
    assert [c["seeds"] for c in categories] == list(CATEGORIES)
    for c in categories:
        if c["seeds"] >= 5 and c["playlists"]:
            assert c["model"]["r_precision"] >= 2 * c["baseline"]["r_precision"], c
            assert c["model"]["ndcg"] >= 2 * c["baseline"]["ndcg"], c
    table = cli("recommend", "--evaluate", env=sim_env(server, lake)).stdout
    for label in ("title only", "first 1 ", "first 5 ", "first 10 ", "first 25 ", "first 100 "):
        assert label in table


def test_for_me_without_user_data_is_a_clean_error(taste_lake: tuple[Path, SimulatedSpotify, list[str]]) -> None:
    lake, server, _ = taste_lake
    done = cli("recommend", "--for-me", env=sim_env(server, lake))
    assert done.returncode != 0 and "no liked songs, top items or listening history" in done.stderr


def test_for_me_recommends_from_liked_songs(tmp_path: Path) -> None:
    """--for-me on a lake whose only user data is liked songs: songs that go with them, none already liked."""
    import datetime as dt

    import pyarrow as pa

    from spotify_pipeline.simulator import Catalog as SimCatalog
    from spotify_pipeline.simulator import CatalogConfig
    from spotify_pipeline.tables.contract import TABLES

    lake = tmp_path / "lake"
    server = SimulatedSpotify(SimCatalog(CatalogConfig(seed=7, playlists=60, items_per_playlist=60, taste=True)))
    server.start()
    try:
        pipeline.run(settings_for(server, lake), server.playlist_ids())
        catalog = Catalog(lake)
        with QueryEngine(catalog) as engine:
            pid = server.playlist_ids()[2]
            liked = [
                r[0]
                for r in engine.execute(
                    f"SELECT DISTINCT song_id FROM playlist_songs WHERE playlist_id = '{pid}' AND song_id IS NOT NULL"
                ).rows
            ][:10]
        now = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
        rows = [{"user_id": "u1", "song_id": s, "added_at": now, "extracted_at": now} for s in liked]
        catalog.overwrite("saved_songs", pa.Table.from_pylist(rows, schema=TABLES["saved_songs"].schema))
        done = cli("recommend", "--for-me", "--n", "10", "--format", "json", env=sim_env(server, lake))
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["target_type"] == "user" and result["target_id"] == "u1" and result["seeds"] == len(liked)
    songs = [r["song_id"] for r in result["recommendations"]]
    assert len(songs) == 10 and not set(songs) & set(liked)
    assert result["recommendations"][0]["reason"].startswith("often together with ")


def test_recommend_needs_exactly_one_mode(make_simulator: SimulatorFactory, tmp_path: Path) -> None:
    server = make_simulator(playlists=3)
    done = cli("recommend", env=sim_env(server, tmp_path / "lake"))
    assert done.returncode != 0 and "exactly one of" in done.stderr
