"""A playlist emptied upstream (0 items now) loses its positions: its latest complete extraction has no
items, and that is what the table must show, incrementally and in a rebuild."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from spotify_pipeline.lake import LocalStorage
from spotify_pipeline.tables.catalog import Catalog
from spotify_pipeline.transform import transform

from ..conftest import SimulatorFactory
from .test_transform import extract_at, rows, table_contents


def day(n: int) -> dt.datetime:
    return dt.datetime(2026, 10, n, 12, tzinfo=dt.UTC)


def positions(lake: Path, playlist_id: str) -> int:
    return int(rows(lake, f"SELECT count(*) FROM playlist_songs WHERE playlist_id = '{playlist_id}'")[0][0])


def test_an_emptied_playlist_keeps_no_positions(make_simulator: SimulatorFactory, tmp_path: Path) -> None:
    server = make_simulator(playlists=5, items_per_playlist=20)
    storage, catalog = LocalStorage(tmp_path), Catalog(tmp_path)
    emptied, kept = server.catalog.id_of("playlist", 2), server.catalog.id_of("playlist", 3)
    extract_at(server, tmp_path, day(1))
    transform(storage, catalog)
    assert positions(tmp_path, emptied) > 0
    kept_before = positions(tmp_path, kept)
    server.catalog.empty([2])
    extract_at(server, tmp_path, day(2))
    transform(storage, catalog)
    assert positions(tmp_path, emptied) == 0
    assert positions(tmp_path, kept) == kept_before
    incremental = table_contents(tmp_path)
    transform(storage, catalog, rebuild=True)  # both extractions in one batch: the empty one is the latest
    assert table_contents(tmp_path) == incremental


def test_a_playlist_filled_again_after_being_emptied_has_its_new_positions(
    make_simulator: SimulatorFactory, tmp_path: Path
) -> None:
    server = make_simulator(playlists=5, items_per_playlist=20)
    storage, catalog = LocalStorage(tmp_path), Catalog(tmp_path)
    playlist = server.catalog.id_of("playlist", 2)
    extract_at(server, tmp_path, day(1))
    server.catalog.empty([2])
    extract_at(server, tmp_path, day(2))
    server.catalog._emptied.discard(2)  # refilled: its items are back
    server.catalog.mutate([2])
    extract_at(server, tmp_path, day(3))
    transform(storage, catalog)  # all three in one batch
    assert positions(tmp_path, playlist) == server.catalog.playlist_size(2) > 0
