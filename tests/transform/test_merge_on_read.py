"""Runs that change a few playlists publish them as position delete files (tables/replace.py), and the tables
read exactly as a rebuild from the raw zone makes them; `maintain` then folds the deletes into the data
files and drops the delete files, with the same rows."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from spotify_pipeline.lake import LocalStorage
from spotify_pipeline.tables import maintenance, replace
from spotify_pipeline.tables.catalog import Catalog
from spotify_pipeline.tables.contract import DATA_TABLES
from spotify_pipeline.tables.maintenance import maintain, referenced_files
from spotify_pipeline.transform import transform
from spotify_pipeline.transform.snapshots import table_row_counts

from ..conftest import SimulatorFactory
from .test_transform import extract_at, table_contents


def delete_files(catalog: Catalog) -> dict[str, int]:
    return {n: len(catalog.files(n).deletes) for n in catalog.table_names() if catalog.files(n).deletes}


def pyiceberg_rows(lake: Path) -> dict[str, int]:
    catalog = Catalog(lake)
    return {n: catalog.table(n).scan().to_arrow().num_rows for n in DATA_TABLES if n in catalog.table_names()}


def test_runs_with_changed_playlists_write_deletes_and_equal_a_rebuild(
    make_simulator: SimulatorFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small tables: a changed playlist touches a large share of each file, which would rewrite it; with
    # the share at 1 only a file whose every row is replaced is (dropped, not rewritten).
    monkeypatch.setattr(replace, "REWRITE_SHARE", 1.0)
    server = make_simulator(playlists=8, items_per_playlist=40)
    storage, catalog = LocalStorage(tmp_path), Catalog(tmp_path)
    for day, changed in ((1, []), (2, [1]), (3, [1, 5]), (4, [0])):
        server.mutate(changed) if changed else None
        extract_at(server, tmp_path, dt.datetime(2026, 10, day, 12, tzinfo=dt.UTC))
        transform(storage, catalog)
    deletes = delete_files(Catalog(tmp_path))
    assert {"songs", "playlist_songs"} <= deletes.keys()  # song_artists: the same credits, not committed
    incremental = table_contents(tmp_path)
    # pyiceberg's own scan applies the same deletes (tests/tables/test_deletes.py compares the rows).
    assert all(len(incremental[n]) == rows for n, rows in pyiceberg_rows(tmp_path).items())
    # maintain, told to rewrite every file with deletes (by default only those past half deleted), drops the
    # delete files: same rows, nothing dangling.
    monkeypatch.setattr(maintenance, "COMPACT_DELETED_SHARE", 0.0)
    maintain(storage, Catalog(tmp_path), keep_days=0, orphan_age=dt.timedelta(0))
    catalog = Catalog(tmp_path)
    assert delete_files(catalog) == {}
    assert table_contents(tmp_path) == incremental
    files = {str(p) for p in (tmp_path / "warehouse").rglob("*") if p.is_file()}
    assert files == set().union(*(referenced_files(catalog, n) for n in catalog.table_names()))
    # The next incremental run on the compacted lake, then a rebuild from the raw zone: the same tables.
    server.mutate([2])
    extract_at(server, tmp_path, dt.datetime(2026, 10, 5, 12, tzinfo=dt.UTC))
    transform(storage, catalog)
    assert delete_files(Catalog(tmp_path))
    incremental = table_contents(tmp_path)
    transform(storage, Catalog(tmp_path), rebuild=True)
    assert delete_files(Catalog(tmp_path)) == {}
    assert table_contents(tmp_path) == incremental


def test_a_second_run_on_the_same_day_replaces_only_the_popularity_of_the_songs_it_saw(
    make_simulator: SimulatorFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(replace, "REWRITE_SHARE", 1.0)
    server = make_simulator(playlists=8, items_per_playlist=40)
    storage, catalog = LocalStorage(tmp_path), Catalog(tmp_path)
    extract_at(server, tmp_path, dt.datetime(2026, 10, 1, 9, tzinfo=dt.UTC))
    transform(storage, catalog)
    before = set(Catalog(tmp_path).data_files("song_popularity"))
    total = len(table_contents(tmp_path)["song_popularity"])
    server.mutate([3])
    extract_at(server, tmp_path, dt.datetime(2026, 10, 1, 10, tzinfo=dt.UTC))  # the same observed_date
    transform(storage, catalog)
    catalog = Catalog(tmp_path)
    # Replaced by (song_id, observed_date): the day's file stays, only the seen songs' rows are marked.
    assert before <= set(catalog.data_files("song_popularity"))
    (deletes,) = catalog.files("song_popularity").deletes
    marked = pq.read_table(deletes).num_rows
    assert 0 < marked < total
    incremental = table_contents(tmp_path)
    transform(storage, catalog, rebuild=True)
    assert table_contents(tmp_path) == incremental


def test_rows_marked_deleted_do_not_count_as_rows(
    make_simulator: SimulatorFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deleted rows pile up in a table's files between maintenance passes (a week of hourly runs marked more
    rows of `albums` deleted than it holds): the row counts of `tables` and of the row-count collapse check
    are the rows a reader sees, not the records of the data files."""
    monkeypatch.setattr(replace, "REWRITE_SHARE", 1.0)
    server = make_simulator(playlists=4, items_per_playlist=40)
    storage = LocalStorage(tmp_path)
    for day in range(1, 13):
        server.mutate([0, 1]) if day > 1 else None
        extract_at(server, tmp_path, dt.datetime(2026, 10, day, 12, tzinfo=dt.UTC))
        transform(storage, Catalog(tmp_path))  # raised QualityError (songs.row_count_not_collapsing) before
    catalog = Catalog(tmp_path)
    songs = catalog.table("songs").current_snapshot()
    assert songs is not None and int(songs.summary["total-position-deletes"]) > len(table_contents(tmp_path)["songs"])
    counts, contents = table_row_counts(catalog), table_contents(tmp_path)
    assert {n: counts[n] for n in contents if n in counts} == {n: len(contents[n]) for n in contents if n in counts}
