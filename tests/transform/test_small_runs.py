"""A small run costs what changed (issue #20): the merges read only the old rows of the keys the batch holds
(row groups of the tables' sorted files pruned by their statistics), stage only those keys' rows, check
them, and commit only the tables whose rows really changed; the result is still exactly a rebuild's."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import duckdb
import pytest

from spotify_pipeline.errors import QualityError
from spotify_pipeline.lake import LocalStorage
from spotify_pipeline.tables import catalog as catalog_module
from spotify_pipeline.tables.catalog import Catalog
from spotify_pipeline.tables.contract import DATA_TABLES
from spotify_pipeline.transform import publish, transform
from spotify_pipeline.transform.scope import touched_query, touched_sql

from ..conftest import SimulatorFactory
from .test_layout import day
from .test_transform import extract_at, rows, table_contents


def row_groups_scanned(
    con: duckdb.DuckDBPyConnection, relation: str, params: list[Any] | None = None
) -> tuple[int, int]:
    """(row groups read, row groups in the files) when DuckDB reads `relation`'s Parquet files, from the
    query profile (its text form: the JSON one leaves the row groups out). A scan's lines start at the
    column of its box, which other operators' boxes may share the lines with."""
    lines = con.execute(f"EXPLAIN ANALYZE SELECT * FROM {relation}", params).fetchall()[0][1].splitlines()
    read = total = 0
    for i, line in enumerate(lines):
        column = line.find("Function: READ_PARQUET")
        if column < 0:
            continue
        label = "Row Groups Scanned: "
        found = next(x for x in lines[i:] if x[column : column + len(label)] == label)
        scanned, of = re.match(r"(\d+) / (\d+)", found[column + len(label) :]).groups()  # type: ignore[union-attr]
        read, total = read + int(scanned), total + int(of)
    return read, total


@pytest.fixture
def lake(make_simulator: SimulatorFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A lake of 8 playlists of 30 items in 40-row files, then one playlist changed upstream and extracted."""
    monkeypatch.setattr(publish, "PUBLISH_ROWS", 40)
    server = make_simulator(playlists=8, items_per_playlist=30)
    extract_at(server, tmp_path, day(1))
    transform(LocalStorage(tmp_path), Catalog(tmp_path))
    server.mutate([3])
    extract_at(server, tmp_path, day(2))  # the others: snapshot checks
    return server, tmp_path


def test_a_small_run_reads_and_stages_only_the_changed_keys_rows(lake: Any) -> None:
    server, path = lake
    changed = server.catalog.id_of("playlist", 3)
    seen: dict[str, Any] = {}

    def inspect(con: duckdb.DuckDBPyConnection) -> None:
        seen["scanned"] = row_groups_scanned(con, f"({touched_sql('playlist_songs')})")
        seen["whole"] = row_groups_scanned(con, "old_playlist_songs")
        seen["staged"] = con.execute("SELECT DISTINCT playlist_id FROM staged_playlist_songs").fetchall()
        seen["staged_songs"] = con.execute("SELECT count(*) FROM staged_songs").fetchall()[0][0]
        seen["batch_songs"] = con.execute("SELECT count(DISTINCT song_id) FROM b_songs").fetchall()[0][0]

    catalog = Catalog(path)
    before = {name: catalog.snapshot_id(name) for name in DATA_TABLES}
    result = transform(LocalStorage(path), catalog, stage_hook=inspect)
    read, total = seen["scanned"]
    assert seen["whole"][1] == total >= 5  # the table's files hold several row groups...
    assert 1 <= read <= 2 < total  # ...and the merge read only those that can hold the changed playlist
    assert seen["staged"] == [(changed,)]  # staged: the changed playlist's rows, not the table
    assert seen["staged_songs"] == seen["batch_songs"]
    # Committed only where rows changed: the batch's albums' artists are what the table holds already.
    after = {name: catalog.snapshot_id(name) for name in DATA_TABLES}
    assert after["album_artists"] == before["album_artists"]
    assert after["playlist_songs"] != before["playlist_songs"]
    assert result.rows["playlist_songs"] == rows(path, "SELECT count(*) FROM playlist_songs")[0][0]
    incremental = table_contents(path)
    transform(LocalStorage(path), catalog, rebuild=True)
    assert table_contents(path) == incremental


def test_a_song_dropped_from_the_staged_rows_fails_the_references_of_untouched_rows(lake: Any) -> None:
    """The checks of a small run look at the changed rows, and at the untouched rows that point to a key the
    run removed: a song referenced by a playlist the run did not touch is still caught."""
    server, path = lake
    other = server.catalog.id_of("playlist", 5)
    shared = rows(
        path,
        "SELECT p.song_id, count(*) FROM playlist_songs p WHERE p.playlist_id = '"
        + other
        + "' AND p.song_id IN (SELECT song_id FROM playlist_songs WHERE playlist_id = '"
        + server.catalog.id_of("playlist", 3)
        + "') GROUP BY 1 ORDER BY 1 LIMIT 1",
    )
    if not shared:
        pytest.skip("the simulator's playlists 3 and 5 share no song")
    (song, references), *_ = shared
    catalog = Catalog(path)
    before = {name: catalog.snapshot_id(name) for name in DATA_TABLES}

    def drop_song(con: duckdb.DuckDBPyConnection) -> None:
        con.execute("DELETE FROM staged_songs WHERE song_id = ?", [song])

    with pytest.raises(QualityError, match=r"playlist_songs\.song_id_resolves"):
        transform(LocalStorage(path), catalog, stage_hook=drop_song)
    assert {name: catalog.snapshot_id(name) for name in DATA_TABLES} == before
    (failing,) = rows(
        path,
        "SELECT failing_rows FROM quality_results WHERE check_name = 'playlist_songs.song_id_resolves'"
        " ORDER BY checked_at DESC LIMIT 1",
    )
    total = rows(path, f"SELECT count(*) FROM playlist_songs WHERE song_id = '{song}'")[0][0]
    assert failing[0] == total >= references  # the changed playlist's rows and the untouched ones


class ReadCounting(LocalStorage):
    """A local lake that remembers every key read."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.keys: list[str] = []

    def read(self, key: str) -> bytes:
        self.keys.append(key)
        return super().read(key)


def test_a_run_reads_only_the_manifests_of_the_runs_it_has_not_processed(lake: Any) -> None:
    """Every earlier run's manifest (one outcome per playlist: ~1.2 MB at 10k playlists) stays unread, so
    a lake of a week of hourly runs does not parse 168 of them each run."""
    _, path = lake
    storage = ReadCounting(path)
    result = transform(storage, Catalog(path))
    manifests = [k for k in storage.keys if k.startswith("raw/_manifests/")]
    assert len(result.raw_runs) == 1 and len(manifests) == 1 and result.raw_runs[0] in manifests[0]
    again = ReadCounting(path)
    assert transform(again, Catalog(path)).raw_runs == []
    assert not [k for k in again.keys if k.startswith("raw/_manifests/")]


def test_the_keyed_replaces_of_a_publish_open_no_database_of_their_own(
    lake: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each replace used to open a DuckDB database (~40-100 ms, 8-10 per small run); inside the transform
    they query through cursors of its connection."""
    from spotify_pipeline.transform import connection

    opened: list[bool] = []
    real = connection.connect

    def counting(*args: Any, **kwargs: Any) -> duckdb.DuckDBPyConnection:
        opened.append(True)
        return real(*args, **kwargs)

    monkeypatch.setattr(connection, "connect", counting)
    _, path = lake
    catalog = Catalog(path)
    before = {name: catalog.snapshot_id(name) for name in DATA_TABLES}
    transform(LocalStorage(path), catalog)
    replaced = [n for n in DATA_TABLES if catalog.snapshot_id(n) != before[n]]
    assert "playlist_songs" in replaced and "songs" in replaced  # keyed replaces ran...
    assert opened == []  # ...on the transform's connection


def test_a_run_naming_many_keys_of_a_large_table_replaces_only_them(
    make_simulator: SimulatorFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More changed keys than `MAX_REPLACED_KEYS` is not by itself a reason to merge and publish a table whole:
    at 1M items a 1% run names ~10,000 songs, 3.6% of `songs`, and the runs that named a few more than the cap
    rewrote `songs` and `song_artists` whole (27 of a week's 168, 35% of the table bytes each). Only a share
    of the table's rows (`scope.WHOLE_SHARE`) makes the whole table the cheaper write. Here the cap is 5 keys
    and the changed playlist names ~30 of the table's ~200 songs (in 40-row files)."""
    from spotify_pipeline.transform import scope

    monkeypatch.setattr(publish, "PUBLISH_ROWS", 40)
    monkeypatch.setattr(scope, "MAX_REPLACED_KEYS", 5)
    server = make_simulator(playlists=8, items_per_playlist=30, tracks=400)
    path = tmp_path
    extract_at(server, path, day(1))
    transform(LocalStorage(path), Catalog(path))
    server.mutate([3])
    extract_at(server, path, day(2))
    catalog = Catalog(path)
    files_before = set(catalog.data_files("songs"))
    seen: dict[str, Any] = {}

    def inspect(con: duckdb.DuckDBPyConnection) -> None:
        seen["staged"] = con.execute("SELECT count(*) FROM staged_songs").fetchall()[0][0]
        seen["batch"] = con.execute("SELECT count(DISTINCT song_id) FROM b_songs").fetchall()[0][0]
        seen["table"] = con.execute("SELECT count(*) FROM old_songs").fetchall()[0][0]

    transform(LocalStorage(path), catalog, stage_hook=inspect)
    assert 5 < seen["batch"] < seen["table"] * scope.WHOLE_SHARE  # past the cap, below the share
    assert seen["staged"] == seen["batch"]  # merged by its keys, not whole
    kept = files_before & set(Catalog(path).data_files("songs"))
    assert kept, "every data file of songs was rewritten: published whole"
    incremental = table_contents(path)
    transform(LocalStorage(path), catalog, rebuild=True)
    assert table_contents(path) == incremental


@pytest.fixture
def same_day(make_simulator: SimulatorFactory, tmp_path: Path) -> Any:
    """A lake whose popularity of the day holds every song, then one playlist changed and extracted again on
    the same day: the batch observes a few of the day's songs again."""
    server = make_simulator(playlists=8, items_per_playlist=40)
    extract_at(server, tmp_path, dt.datetime(2026, 10, 1, 9, tzinfo=dt.UTC))
    transform(LocalStorage(tmp_path), Catalog(tmp_path))
    server.mutate([3])
    extract_at(server, tmp_path, dt.datetime(2026, 10, 1, 10, tzinfo=dt.UTC))
    return server, tmp_path


def test_a_run_on_the_same_day_stages_only_the_popularity_of_the_songs_it_saw(same_day: Any) -> None:
    """A time series clustered by day is merged by its whole key: a few songs seen again read, merge and
    check their rows of the day, not the whole day's (at 10M items a day held all 2.9M songs: 2 s a run)."""
    _, path = same_day
    seen: dict[str, int] = {}

    def inspect(con: duckdb.DuckDBPyConnection) -> None:
        for relation in ("touched", "staged"):
            seen[relation] = con.execute(f"SELECT count(*) FROM {relation}_song_popularity").fetchall()[0][0]
        seen["batch"] = con.execute(
            "SELECT count(*) FROM (SELECT DISTINCT song_id, observed_date FROM b_song_popularity)"
        ).fetchall()[0][0]
        seen["day"] = con.execute("SELECT count(*) FROM new_song_popularity").fetchall()[0][0]

    catalog = Catalog(path)
    result = transform(LocalStorage(path), catalog, stage_hook=inspect)
    assert 0 < seen["batch"] < seen["day"]
    assert seen["touched"] <= seen["batch"] == seen["staged"]  # the batch's songs' rows, not the day's
    assert result.rows["song_popularity"] == seen["day"] == rows(path, "SELECT count(*) FROM song_popularity")[0][0]
    incremental = table_contents(path)
    transform(LocalStorage(path), catalog, rebuild=True)
    assert table_contents(path) == incremental


@pytest.mark.parametrize("duplicate", ["within_the_batch", "of_a_kept_row"])
def test_a_duplicate_key_staged_by_a_run_on_the_same_day_is_caught(same_day: Any, duplicate: str) -> None:
    """The key check of a table merged by its batch's keys counts the staged rows, and the old rows of the
    day that share a key with one of them: a duplicate among the staged rows, or a staged row repeating a
    key the run did not change (its row kept as it was), fails the run."""
    _, path = same_day
    catalog = Catalog(path)
    before = {name: catalog.snapshot_id(name) for name in DATA_TABLES}

    def tamper(con: duckdb.DuckDBPyConnection) -> None:
        if duplicate == "within_the_batch":
            con.execute("INSERT INTO staged_song_popularity SELECT * FROM staged_song_popularity LIMIT 1")
        else:
            con.execute(
                "INSERT INTO staged_song_popularity SELECT * FROM old_song_popularity o WHERE NOT EXISTS "
                "(SELECT 1 FROM b_song_popularity b WHERE b.song_id = o.song_id "
                "AND b.observed_date = o.observed_date) LIMIT 1"
            )

    with pytest.raises(QualityError, match=r"song_popularity\.key_unique_not_null"):
        transform(LocalStorage(path), catalog, stage_hook=tamper)
    assert {name: catalog.snapshot_id(name) for name in DATA_TABLES} == before


@pytest.fixture
def small_groups(make_simulator: SimulatorFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A lake of 30 playlists of 80 items in 40-row files of 4-row groups, then one playlist changed upstream
    and extracted (not yet transformed)."""
    monkeypatch.setattr(publish, "PUBLISH_ROWS", 40)
    monkeypatch.setattr(catalog_module, "ROW_GROUP_ROWS", 4)
    server = make_simulator(playlists=30, items_per_playlist=80)
    extract_at(server, tmp_path, day(1))
    transform(LocalStorage(tmp_path), Catalog(tmp_path))
    server.mutate([3])
    extract_at(server, tmp_path, day(2))
    return tmp_path


def test_a_run_reads_only_the_row_groups_that_can_hold_its_songs(small_groups: Path) -> None:
    """Songs are spread over the table by their random ids: a semi-join on the batch's songs reached the scan
    as their min/max, the whole table, once they were more than DuckDB's 50-value IN list (at 10M items 133
    songs decoded 59 of 72 files). Named as constants, they are checked against each row group's statistics:
    at most one row group a song is read, of row groups of `ROW_GROUP_ROWS` rows. `playlist_songs`, read by
    playlist, a narrow range, keeps a row group per file."""
    seen: dict[str, Any] = {}

    def inspect(con: duckdb.DuckDBPyConnection) -> None:
        seen["songs"] = con.execute("SELECT count(DISTINCT song_id) FROM keys_songs").fetchall()[0][0]
        seen["scanned"] = row_groups_scanned(con, f"({touched_query(con, 'songs')[0]})", touched_query(con, "songs")[1])
        seen["touched"] = con.execute("SELECT count(*) FROM touched_songs").fetchall()[0][0]
        seen["positions"] = row_groups_scanned(con, "old_playlist_songs")

    catalog = Catalog(small_groups)
    files = len(catalog.data_files("playlist_songs"))
    transform(LocalStorage(small_groups), catalog, stage_hook=inspect)
    read, total = seen["scanned"]
    assert seen["songs"] > 50  # past the IN list DuckDB makes of a semi-join's keys
    assert read <= seen["songs"] < total  # at most a row group per song
    assert seen["touched"] == seen["songs"]
    assert seen["positions"] == (files, files)  # a row group per file
    incremental = table_contents(small_groups)
    transform(LocalStorage(small_groups), catalog, rebuild=True)
    assert table_contents(small_groups) == incremental


def test_a_run_counts_its_artists_from_the_changed_playlists(
    small_groups: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The moved artists' `artist_stats` rows are the stored ones plus the changed playlist's positions added
    and removed (transform/artist_stats.py), not a join of `song_artists` to every position (at 10M items the
    song column of all 10M positions was read); the stored credits are read only for the songs the batch does
    not credit again, by row group. Still exactly a rebuild's."""
    import dataclasses

    from spotify_pipeline.transform import artist_stats
    from spotify_pipeline.transform.merge import MERGES

    staged: list[object] = []

    def counting(con: duckdb.DuckDBPyConnection) -> object:
        staged.append(artist_stats.stage_changed(con))
        return staged[-1]

    monkeypatch.setitem(MERGES, "artist_stats", dataclasses.replace(MERGES["artist_stats"], stage_changed=counting))
    seen: dict[str, Any] = {}

    def inspect(con: duckdb.DuckDBPyConnection) -> None:
        sql, values = artist_stats.old_credits_query(con)
        seen["looked_up"] = len(values)
        seen["scanned"] = row_groups_scanned(con, f"({sql})", values)
        seen["added_or_removed"] = con.execute(
            "SELECT count(*) FROM ((SELECT song_id FROM touched_playlist_songs EXCEPT SELECT song_id FROM "
            "staged_playlist_songs) UNION ALL (SELECT song_id FROM staged_playlist_songs EXCEPT SELECT song_id "
            "FROM touched_playlist_songs))"
        ).fetchall()[0][0]
        seen["staged"] = con.execute("SELECT * FROM new_artist_stats ORDER BY ALL").fetchall()
        seen["recomputed"] = con.execute(f"{artist_stats.ARTIST_STATS_SQL.format(where='')} ORDER BY ALL").fetchall()

    catalog = Catalog(small_groups)
    before = catalog.snapshot_id("artist_stats")
    transform(LocalStorage(small_groups), catalog, stage_hook=inspect)
    assert staged == [True]  # from the changes, not recomputed
    assert seen["added_or_removed"] > 0  # songs came and went: their other positions were looked up
    read, total = seen["scanned"]
    # a song's credits lie in one row group, or straddle two: at most two a song not credited again
    assert seen["looked_up"] > 0 and read <= 2 * seen["looked_up"] < total
    assert seen["staged"] == seen["recomputed"]
    assert catalog.snapshot_id("artist_stats") != before
    incremental = table_contents(small_groups)
    transform(LocalStorage(small_groups), catalog, rebuild=True)
    assert table_contents(small_groups) == incremental
