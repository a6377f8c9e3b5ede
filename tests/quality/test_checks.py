"""quality.py on tiny real DuckDB tables: a clean lake passes every declared check; for each check, a table
broken in the way it guards against fails it (and only warns when the check is a warning)."""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import pytest

from spotify_pipeline.quality.checks import CHECKS, COLLAPSE_MIN_ROWS, Check, failed_errors, run_checks
from spotify_pipeline.tables.contract import DATA_TABLES, TABLES
from spotify_pipeline.transform.connection import connect

NOW = "TIMESTAMPTZ '2026-01-02 03:04:05+00'"
# One consistent row per table: every reference resolves, every value is valid.
CLEAN_ROWS = {
    "artists": f"SELECT 'ar1' AS artist_id, 50 AS popularity, {NOW} AS last_seen_at",
    "albums": "SELECT 'al1' AS album_id, DATE '2020-05-01' AS release_date, 'day' AS release_date_precision,"
    " '2020-05-01' AS release_date_raw, 40 AS popularity",
    "album_artists": "SELECT 'al1' AS album_id, 'ar1' AS artist_id, 0 AS position",
    "songs": f"SELECT 's1' AS song_id, 'al1' AS album_id, 'ar1' AS artist_id, 1000 AS duration_ms, 30 AS popularity,"
    f" {NOW} AS last_seen_at",
    "song_artists": "SELECT 's1' AS song_id, 'ar1' AS artist_id, 0 AS position",
    "playlists": f"SELECT 'p1' AS playlist_id, 'snap' AS snapshot_id, 1 AS total_items, {NOW} AS items_extracted_at",
    "playlist_songs": "SELECT 'p1' AS playlist_id, 0 AS position, 'track' AS item_type, 's1' AS song_id,"
    " 'snap' AS snapshot_id, TIMESTAMPTZ '2024-01-01 00:00:00+00' AS added_at",
    "playlist_changes": "SELECT 'p1' AS playlist_id, 'r2' AS run_id, 'added' AS change, 'spotify:track:s1' AS item_uri",
    "song_popularity": f"SELECT 's1' AS song_id, DATE '2026-01-02' AS observed_date, 30 AS popularity,"
    f" {NOW} AS observed_at",
    "saved_songs": "SELECT 'u1' AS user_id, 's1' AS song_id",
    "plays": f"SELECT 'u1' AS user_id, {NOW} AS played_at, 's1' AS song_id",
    "user_top": "SELECT 'u1' AS user_id, DATE '2026-01-02' AS observed_date, 'short_term' AS time_range,"
    " 'track' AS item_type, 0 AS rank, 's1' AS item_id",
    "listen_events": f"SELECT 'l1' AS listen_id, 'u1' AS user_id, {NOW} AS ended_at, 1000 AS ms_played,"
    " 'track' AS item_type, 's1' AS song_id, 'export' AS source",
    "listens": f"SELECT 'l1' AS listen_id, 'u1' AS user_id, {NOW} AS ended_at, 1000 AS ms_played,"
    " 'track' AS item_type, 's1' AS song_id, 'export' AS source",
    "artist_stats": "SELECT 'ar1' AS artist_id, 1 AS appearances, 1 AS playlists, 1 AS songs",
}


def _breakers() -> dict[str, str]:
    """For each check by name, the SQL that breaks the clean tables in the way the check guards against."""
    breakers: dict[str, str] = {}
    for name in DATA_TABLES:  # a duplicated row breaks every key
        breakers[f"{name}.key_unique_not_null"] = f"INSERT INTO {name} SELECT * FROM {name}"
    for check in CHECKS:
        if check.name.endswith("_resolves") and check.name != "user_top.item_resolves":
            column = check.name.split(".")[1].removesuffix("_resolves")
            breakers[check.name] = f"UPDATE {check.table} SET {column} = 'missing'"
        if check.name.endswith(".popularity_range"):
            breakers[check.name] = f"UPDATE {check.table} SET popularity = 101"
        if check.name.endswith(".values_valid"):
            breakers[check.name] = f"UPDATE {check.table} SET ms_played = -1"
    breakers.update(
        {
            "user_top.item_resolves": "UPDATE user_top SET item_type = 'artist'",  # s1 is no artist
            "songs.duration_positive": "UPDATE songs SET duration_ms = 0",
            "albums.release_date_matches_precision": "UPDATE albums SET release_date_precision = 'year'",
            "playlist_songs.positions_contiguous": "UPDATE playlist_songs SET position = 1",
            "playlist_songs.positions_match_total": "UPDATE playlists SET total_items = 2",
            "playlist_songs.song_only_for_tracks": "UPDATE playlist_songs SET item_type = 'episode'",
            "playlist_songs.added_at_not_in_future": "UPDATE playlist_songs SET added_at = now() + INTERVAL 2 DAY",
            "playlist_songs.added_at_not_epoch": "UPDATE playlist_songs SET added_at = '1970-01-01 00:00Z'",
        }
    )
    return breakers


BREAKERS = _breakers()
# Missing or odd data that must not stop a publish; every other check is an error.
WARNINGS = {
    "songs.duration_positive",
    "playlist_songs.positions_match_total",
    "playlist_songs.added_at_not_in_future",
    "playlist_songs.added_at_not_epoch",
}


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    """Every data table with the contract's columns and one clean row."""
    con = connect()
    for name in DATA_TABLES:
        con.register(f"_{name}_empty", TABLES[name].schema.empty_table())
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM _{name}_empty")
        con.execute(f"INSERT INTO {name} BY NAME {CLEAN_ROWS[name]}")
    yield con
    con.close()


def _results(con: duckdb.DuckDBPyConnection, previous: dict[str, int] | None = None) -> dict[str, tuple[str, int]]:
    results = run_checks(con, {n: n for n in DATA_TABLES}, previous)
    return {r.check.name: (r.check.severity, r.failing_rows) for r in results}


def test_clean_tables_pass_every_check(con: duckdb.DuckDBPyConnection) -> None:
    results = _results(con)
    assert set(results) == {c.name for c in CHECKS}
    assert {name: rows for name, (_, rows) in results.items() if rows} == {}


def test_every_check_has_a_way_to_break_it() -> None:
    assert set(BREAKERS) == {c.name for c in CHECKS}, "a new check needs a breaker here"


@pytest.mark.parametrize("check", CHECKS, ids=[c.name for c in CHECKS])
def test_each_check_fails_on_the_table_it_guards(con: duckdb.DuckDBPyConnection, check: Check) -> None:
    name, severity = check.name, check.severity
    con.execute(BREAKERS[name])
    results = run_checks(con, {n: n for n in DATA_TABLES})
    failing = {r.check.name: r.failing_rows for r in results if not r.passed}
    assert failing.get(name, 0) > 0, f"{name} passed on a broken table; failing: {failing}"
    assert severity == ("warning" if name in WARNINGS else "error")
    blocking = {r.check.name for r in failed_errors(results)}
    assert (name in blocking) == (name not in WARNINGS), "a warning must never block the publish"


def test_a_collapsing_table_fails_only_when_it_was_big_enough(con: duckdb.DuckDBPyConnection) -> None:
    # songs has 1 row now: having had COLLAPSE_MIN_ROWS rows before is a collapse, an error
    results = _results(con, {"songs": COLLAPSE_MIN_ROWS})
    assert results["songs.row_count_not_collapsing"] == ("error", COLLAPSE_MIN_ROWS - 1)
    # a table too small before to judge, or one that kept more than half of its rows, passes
    assert "songs.row_count_not_collapsing" not in _results(con, {"songs": COLLAPSE_MIN_ROWS - 1})
    con.execute(
        f"INSERT INTO songs BY NAME SELECT 's' || i AS song_id FROM range(2, {COLLAPSE_MIN_ROWS // 2 + 2}) t(i)"
    )
    assert _results(con, {"songs": COLLAPSE_MIN_ROWS})["songs.row_count_not_collapsing"] == ("error", 0)


def test_positions_not_starting_at_zero_fail_even_when_the_last_is_n_minus_1(con: duckdb.DuckDBPyConnection) -> None:
    # Two rows at positions -1 and 1: the last position is count - 1 and the key is unique, so only the
    # `min(position) <> 0` half of the check can see that the playlist does not start at 0.
    con.execute("UPDATE playlist_songs SET position = -1")
    con.execute("INSERT INTO playlist_songs SELECT * REPLACE (1 AS position) FROM playlist_songs")
    con.execute("UPDATE playlists SET total_items = 2")
    failing = {name: rows for name, (_, rows) in _results(con).items() if rows}
    assert failing == {"playlist_songs.positions_contiguous": 1}


def test_a_runs_references_found_among_its_changed_parent_rows_leave_the_parent_unread(
    con: duckdb.DuckDBPyConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small run's positions name the songs its batch brought: the reference check counts them against
    the run's changed songs and reads the whole `songs` only for a position not among them."""
    from spotify_pipeline.quality import checks

    (resolves,) = [c for c in CHECKS if c.name == "playlist_songs.song_id_resolves"]
    monkeypatch.setattr(checks, "CHECKS", [resolves])
    none = "(SELECT NULL AS k WHERE false)"
    changes = {
        "playlist_songs": checks.Changes("playlist_songs", "playlist_songs", "(FROM playlist_songs LIMIT 0)", none),
        "songs": checks.Changes("songs", "songs", "(FROM songs LIMIT 0)", none),
    }
    con.execute("CREATE VIEW songs_unreadable AS FROM songs WHERE error('the whole table was read') IS NULL")
    relations = {**{n: n for n in DATA_TABLES}, "songs": "songs_unreadable"}
    (result,) = run_checks(con, relations, changes=changes)
    assert result.failing_rows == 0  # and songs_unreadable was never read
    # A position naming a song the run did not change is looked up in the whole table; a missing one fails.
    con.execute("CREATE VIEW songs_whole AS FROM songs UNION ALL SELECT * REPLACE ('s2' AS song_id) FROM songs")
    relations["songs"] = "songs_whole"
    con.execute("INSERT INTO playlist_songs BY NAME SELECT 'p1' AS playlist_id, 1 AS position, 's2' AS song_id")
    assert run_checks(con, relations, changes=changes)[0].failing_rows == 0
    con.execute("UPDATE playlist_songs SET song_id = 'missing' WHERE position = 1")
    assert run_checks(con, relations, changes=changes)[0].failing_rows == 1


def test_an_empty_table_passes_its_row_checks_and_references_unread(
    con: duckdb.DuckDBPyConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Known to have no rows (`rows`), a table has no offending row: nothing is read for it."""
    con.execute("CREATE VIEW plays_unreadable AS FROM plays WHERE error('plays was read') IS NULL")
    results = run_checks(con, {**{n: n for n in DATA_TABLES}, "plays": "plays_unreadable"}, rows={"plays": 0})
    plays = {r.check.name: r.failing_rows for r in results if r.check.table == "plays"}
    assert plays == {"plays.key_unique_not_null": 0, "plays.song_id_resolves": 0}


def test_positions_match_total_counts_the_playlists_its_rule_names(con: duckdb.DuckDBPyConnection) -> None:
    """The rule, playlist by playlist: fully extracted, with a total, its positions (from the snapshot its row
    describes, by their smallest snapshot id; or none at all) not as many as the total. The query counts
    positions first and reads snapshot ids only for the playlists whose count is off (reading them for every
    position was most of its cost at 10M items), so every branch of the rule is here."""
    playlists = {  # id: (snapshot_id, total_items, items extracted), positions' snapshot ids
        "ok": (("a", 2, True), ["a", "a"]),
        "short": (("a", 3, True), ["a"]),
        "older": (("new", 3, True), ["old"]),
        "empty": (("a", 2, True), []),
        "empty_zero": (("a", 0, True), []),
        "not_extracted": (("a", 5, False), ["a"]),
        "no_total": (("a", None, True), ["a"]),
        "null_snaps": ((None, 3, True), [None, None]),
        "null_vs_set": (("x", 3, True), [None]),
        "mixed_min": (("a", 3, True), ["b", "a"]),
        "mixed_max": (("b", 3, True), ["b", "a"]),
    }
    con.execute("DELETE FROM playlists")
    con.execute("DELETE FROM playlist_songs")
    for pid, ((snap, total, extracted), positions) in playlists.items():
        con.execute(
            f"INSERT INTO playlists BY NAME SELECT ? AS playlist_id, ? AS snapshot_id, ? AS total_items,"
            f" CASE WHEN ? THEN {NOW} END AS items_extracted_at",
            [pid, snap, total, extracted],
        )
        for position, position_snap in enumerate(positions):
            con.execute(
                "INSERT INTO playlist_songs BY NAME SELECT ? AS playlist_id, ? AS position, 'episode' AS item_type,"
                " ? AS snapshot_id",
                [pid, position, position_snap],
            )

    def offends(row: tuple[str | None, int | None, bool], positions: list[str | None]) -> bool:
        snap, total, extracted = row
        if not extracted or total is None:
            return False
        if positions and min((s for s in positions if s is not None), default=None) != snap:
            return False
        return len(positions) != total

    expected = sorted(pid for pid, (row, positions) in playlists.items() if offends(row, positions))
    assert expected == ["empty", "mixed_min", "null_snaps", "short"]
    assert _results(con)["playlist_songs.positions_match_total"] == ("warning", len(expected))
