"""Both shapes of 2026 playlist responses give the same tables: `item` with its deprecated alias `track`
(and `items` with `tracks`), or the current names only, as live responses often come."""

from __future__ import annotations

from pathlib import Path

import pytest

from spotify_pipeline import pipeline
from spotify_pipeline.query.engine import QueryEngine
from spotify_pipeline.tables.catalog import Catalog

from ..conftest import SimulatorFactory, comparable_tables, settings_for
from .test_user_login import do_login


@pytest.mark.parametrize("mode", ["extended", "development"])
def test_both_item_shapes_give_identical_tables(
    make_simulator: SimulatorFactory, tmp_path: Path, isolated_config: Path, mode: str
) -> None:
    tables = {}
    for shape in ("both", "item"):
        server = make_simulator(
            mode=mode, playlists=6, items_per_playlist=40, large_playlist_items=230, items_shape=shape
        )
        lake = tmp_path / shape
        if mode == "development":
            server.login_user = server.catalog.owner(1)  # the large playlist's owner reads its items
            do_login(server, isolated_config)
        report = pipeline.run(settings_for(server, lake), server.playlist_ids())
        assert report.status == "succeeded", report.error
        tables[shape] = comparable_tables(lake)
        with QueryEngine(Catalog(lake)) as engine:
            isrc, upc = engine.execute("SELECT (SELECT count(isrc) FROM songs), (SELECT count(upc) FROM albums)").rows[
                0
            ]
            songs = engine.execute("SELECT count(*) FROM playlist_songs").rows[0][0]
        # ISRC and UPC arrive in both access modes (Development Mode's removal was reverted in March 2026).
        assert isrc > 0 and upc > 0
        assert songs >= 230
    assert tables["both"] == tables["item"]
