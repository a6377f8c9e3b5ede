"""A playlist emptied upstream (0 items now) loses its positions: its latest complete extraction has no
items, and that is what the table must show, incrementally and in a rebuild."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from spotify_pipeline.lake import LocalStorage
from spotify_pipeline.simulator import SimulatedSpotify
from spotify_pipeline.tables.catalog import Catalog
from spotify_pipeline.transform import transform

from ..conftest import SimulatorFactory
from .test_transform import extract_at, rows, table_contents


def day(n: int) -> dt.datetime:
    return dt.datetime(2026, 10, n, 12, tzinfo=dt.UTC)


def run_on(server: SimulatedSpotify, lake: Path, when: dt.datetime) -> None:
    """Extract every playlist as of `when`, then transform the lake incrementally."""
    extract_at(server, lake, when)
    transform(LocalStorage(lake), Catalog(lake))


def assert_rebuild_matches(storage: LocalStorage, catalog: Catalog, lake: Path) -> None:
    """A rebuild from the raw zone (every extraction in one batch) gives the tables run-by-run gave."""
    incremental = table_contents(lake)
    transform(storage, catalog, rebuild=True)
    assert table_contents(lake) == incremental


def positions(lake: Path, playlist_id: str) -> int:
    return int(rows(lake, f"SELECT count(*) FROM playlist_songs WHERE playlist_id = '{playlist_id}'")[0][0])


def test_an_emptied_playlist_keeps_no_positions(make_simulator: SimulatorFactory, tmp_path: Path) -> None:
    server = make_simulator(playlists=5, items_per_playlist=20)
    storage, catalog = LocalStorage(tmp_path), Catalog(tmp_path)
    emptied, kept = server.catalog.id_of("playlist", 2), server.catalog.id_of("playlist", 3)
    run_on(server, tmp_path, day(1))
    assert positions(tmp_path, emptied) > 0
    kept_before = positions(tmp_path, kept)
    server.catalog.empty([2])
    run_on(server, tmp_path, day(2))
    assert positions(tmp_path, emptied) == 0
    assert positions(tmp_path, kept) == kept_before
    assert_rebuild_matches(storage, catalog, tmp_path)  # the empty extraction is the latest


def test_a_playlist_filled_again_after_being_emptied_has_its_new_positions(
    make_simulator: SimulatorFactory, tmp_path: Path
) -> None:
    server = make_simulator(playlists=5, items_per_playlist=20)
    storage, catalog = LocalStorage(tmp_path), Catalog(tmp_path)
    playlist = server.catalog.id_of("playlist", 2)
    extract_at(server, tmp_path, day(1))
    server.catalog.empty([2])
    extract_at(server, tmp_path, day(2))
    server.catalog.refill([2])  # refilled: its items are back
    extract_at(server, tmp_path, day(3))
    transform(storage, catalog)  # all three in one batch
    assert positions(tmp_path, playlist) == server.catalog.playlist_size(2) > 0


def changes(lake: Path, playlist_id: str) -> list[tuple[object, ...]]:
    return rows(
        lake,
        "SELECT change, item_uri, song_id, item_name, run_id, previous_run_id, snapshot_id, previous_snapshot_id"
        f" FROM playlist_changes WHERE playlist_id = '{playlist_id}' ORDER BY ALL",
    )


def test_an_emptied_playlist_shows_every_song_it_lost_as_removed(
    make_simulator: SimulatorFactory, tmp_path: Path
) -> None:
    server = make_simulator(playlists=5, items_per_playlist=20)
    storage, catalog = LocalStorage(tmp_path), Catalog(tmp_path)
    emptied = server.catalog.id_of("playlist", 2)
    run_on(server, tmp_path, day(1))
    former = rows(
        tmp_path,
        "SELECT DISTINCT item_uri, song_id, item_name, run_id, snapshot_id FROM playlist_songs"
        f" WHERE playlist_id = '{emptied}' AND item_type IN ('track', 'episode')",
    )
    assert former
    assert changes(tmp_path, emptied) == []
    server.catalog.empty([2])
    run_on(server, tmp_path, day(2))
    found = changes(tmp_path, emptied)
    assert {c[0] for c in found} == {"removed"}
    assert sorted((uri, song, name) for _, uri, song, name, *_ in found) == sorted(f[:3] for f in former)
    ((previous_run, previous_snapshot),) = {(f[3], f[4]) for f in former}
    ((run, snapshot),) = {(c[4], c[6]) for c in found}
    assert run != previous_run and snapshot == server.catalog.snapshot_id(2) != previous_snapshot
    assert {(c[5], c[7]) for c in found} == {(previous_run, previous_snapshot)}
    incremental = table_contents(tmp_path)
    transform(storage, catalog)  # nothing new: nothing changes
    assert table_contents(tmp_path) == incremental
    assert_rebuild_matches(storage, catalog, tmp_path)


def test_an_empty_extraction_between_two_full_ones_is_diffed_in_a_rebuild_as_run_by_run(
    make_simulator: SimulatorFactory, tmp_path: Path
) -> None:
    server = make_simulator(playlists=5, items_per_playlist=20)
    storage, catalog = LocalStorage(tmp_path), Catalog(tmp_path)
    playlist = server.catalog.id_of("playlist", 2)
    run_on(server, tmp_path, day(1))
    server.catalog.empty([2])
    run_on(server, tmp_path, day(2))
    server.catalog.refill([2])  # refilled: its items are back
    run_on(server, tmp_path, day(3))
    found = changes(tmp_path, playlist)
    assert {c[0] for c in found} == {"added", "removed"}
    assert_rebuild_matches(storage, catalog, tmp_path)


def test_a_playlist_empty_when_first_extracted_records_no_changes_when_filled(
    make_simulator: SimulatorFactory, tmp_path: Path
) -> None:
    server = make_simulator(playlists=5, items_per_playlist=20)
    storage, catalog = LocalStorage(tmp_path), Catalog(tmp_path)
    playlist = server.catalog.id_of("playlist", 2)
    server.catalog.empty([2])
    run_on(server, tmp_path, day(1))
    server.catalog.refill([2])  # filled: nothing earlier to compare with
    run_on(server, tmp_path, day(2))
    assert positions(tmp_path, playlist) > 0
    assert changes(tmp_path, playlist) == []
    assert_rebuild_matches(storage, catalog, tmp_path)
