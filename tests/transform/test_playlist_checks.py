"""A snapshot check that finds a playlist as it was stored changes no row of `playlists` (issue #20): every
run checks every unchanged playlist, so a row that moved with each check would rewrite the whole table
every run. `extracted_at` is when the pipeline last found something new for the playlist (a full fetch, or
a check whose metadata differed), and a rebuild from the raw zone gives the same value."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from spotify_pipeline.lake import LocalStorage
from spotify_pipeline.query.engine import QueryEngine
from spotify_pipeline.tables.catalog import Catalog
from spotify_pipeline.transform import transform

from ..conftest import SimulatorFactory
from .test_transform import extract_at, table_contents


def extracted(lake: Path) -> dict[str, dt.datetime]:
    with QueryEngine(Catalog(lake)) as engine:
        return dict(engine.execute("SELECT playlist_id, extracted_at FROM playlists").rows)


def test_checks_that_find_nothing_new_leave_playlists_as_they_were(
    make_simulator: SimulatorFactory, tmp_path: Path
) -> None:
    server = make_simulator(playlists=6, items_per_playlist=20)
    storage = LocalStorage(tmp_path)
    day = [dt.datetime(2026, 10, d, 12, tzinfo=dt.UTC) for d in range(1, 5)]
    extract_at(server, tmp_path, day[0])
    transform(storage, Catalog(tmp_path))
    first = extracted(tmp_path)
    assert set(first.values()) == {day[0]}

    changed = server.playlist_ids()[2]
    server.mutate([2])
    extract_at(server, tmp_path, day[1])  # one playlist changed, five checked
    transform(storage, Catalog(tmp_path))
    second = extracted(tmp_path)
    assert second == {**first, changed: day[1]}

    snapshot = Catalog(tmp_path).table("playlists").current_snapshot()
    extract_at(server, tmp_path, day[2])  # every playlist checked, none changed
    transform(storage, Catalog(tmp_path))
    assert extracted(tmp_path) == second
    after = Catalog(tmp_path).table("playlists").current_snapshot()
    assert snapshot is not None and after is not None and after.snapshot_id == snapshot.snapshot_id

    server.mutate([4])
    extract_at(server, tmp_path, day[3])
    transform(storage, Catalog(tmp_path))
    incremental = table_contents(tmp_path)
    assert extracted(tmp_path) == {**second, server.playlist_ids()[4]: day[3]}
    transform(storage, Catalog(tmp_path), rebuild=True)
    assert table_contents(tmp_path) == incremental
