"""End to end: a lake extracted over HTTP from the simulator's structured catalog, then `recommend`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spotify_pipeline import pipeline
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


def test_recommend_needs_exactly_one_mode(make_simulator: SimulatorFactory, tmp_path: Path) -> None:
    server = make_simulator(playlists=3)
    done = cli("recommend", env=sim_env(server, tmp_path / "lake"))
    assert done.returncode != 0 and "exactly one of" in done.stderr
