"""transform/merge.py rule by rule, on tiny real DuckDB relations (`b_<table>`, the batch; `old_<table>`, the
table before): new keys inserted, changed rows updated column by column, enrichment-only columns sticky,
ReplaceChildren by the parent's newest time, and every merge idempotent."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from spotify_pipeline.tables.contract import DATA_TABLES, TABLES
from spotify_pipeline.transform.connection import connect
from spotify_pipeline.transform.merge import (
    MERGES,
    Derived,
    KeyedMerge,
    ReplaceChildren,
    merge_sql,
    stage_batch_as_merged,
)

DAY0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def at(day: int) -> dt.datetime:
    return DAY0 + dt.timedelta(days=day)


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    con = connect()
    # playlist_songs' merge also reads the playlists emptied upstream (none unless a test adds one)
    con.execute("CREATE TABLE e_playlist_songs (playlist_id VARCHAR, extracted_at TIMESTAMPTZ)")
    yield con
    con.close()


def load(con: duckdb.DuckDBPyConnection, relation: str, table: str, rows: list[dict[str, Any]]) -> None:
    """`relation` as a DuckDB table with `table`'s contract columns holding `rows` (missing columns NULL)."""
    schema = TABLES[table].schema
    con.register("_rows", pa.Table.from_pylist([{c: r.get(c) for c in schema.names} for r in rows], schema=schema))
    con.execute(f"CREATE OR REPLACE TABLE {relation} AS SELECT * FROM _rows")
    con.unregister("_rows")


def merged(con: duckdb.DuckDBPyConnection, table: str, *columns: str) -> list[tuple[Any, ...]]:
    cols = ", ".join(columns or TABLES[table].schema.names)
    return sorted(con.execute(f"SELECT {cols} FROM ({merge_sql(table)})").fetchall(), key=repr)


def artist(artist_id: str, day: int, **values: Any) -> dict[str, Any]:
    return {"artist_id": artist_id, "first_seen_at": at(day), "last_seen_at": at(day), **values}


def test_keyed_merge_inserts_new_keys_and_keeps_untouched_ones(con: duckdb.DuckDBPyConnection) -> None:
    load(con, "old_artists", "artists", [artist("a1", 1, name="One")])
    load(con, "b_artists", "artists", [artist("a2", 2, name="Two")])
    assert merged(con, "artists", "artist_id", "name") == [("a1", "One"), ("a2", "Two")]


def test_keyed_merge_newer_observation_wins_column_by_column(con: duckdb.DuckDBPyConnection) -> None:
    load(con, "old_artists", "artists", [artist("a1", 1, name="Old", uri="u-old")])
    load(con, "b_artists", "artists", [artist("a1", 5, name="New", uri=None)])
    # the newer row wins every plain column, even with a NULL; first_seen_at keeps the earliest, last_seen_at
    # (when the values last changed) moves with the newer, different values
    assert merged(con, "artists", "artist_id", "name", "uri", "first_seen_at", "last_seen_at") == [
        ("a1", "New", None, at(1), at(5))
    ]
    # an older batch observation loses, but still moves first_seen_at back
    load(con, "b_artists", "artists", [artist("a1", 0, name="Older")])
    assert merged(con, "artists", "name", "first_seen_at", "last_seen_at") == [("Old", at(0), at(1))]


def test_sticky_columns_keep_their_last_known_value(con: duckdb.DuckDBPyConnection) -> None:
    assert isinstance(MERGES["artists"], KeyedMerge) and "followers" in MERGES["artists"].sticky
    load(con, "old_artists", "artists", [artist("a1", 1, followers=10, genres=["pop"], name="Old")])
    load(con, "b_artists", "artists", [artist("a1", 2, followers=None, genres=None, name="New")])
    assert merged(con, "artists", "name", "followers", "genres") == [("New", 10, ["pop"])]
    load(con, "b_artists", "artists", [artist("a1", 2, followers=20, genres=None)])
    assert merged(con, "artists", "followers", "genres") == [(20, ["pop"])]
    # an older observation fills a sticky column the table lacks, without overriding one it has
    load(con, "old_artists", "artists", [artist("a1", 3, followers=None, genres=["rock"])])
    load(con, "b_artists", "artists", [artist("a1", 2, followers=7, genres=["jazz"])])
    assert merged(con, "artists", "followers", "genres") == [(7, ["rock"])]


def test_earliest_columns_keep_the_earliest(con: duckdb.DuckDBPyConnection) -> None:
    song = {"first_seen_at": at(3), "last_seen_at": at(3)}
    load(con, "old_songs", "songs", [{"song_id": "s1", "song_added": at(2), **song}])
    load(
        con, "b_songs", "songs", [{"song_id": "s1", "song_added": at(1), "first_seen_at": at(4), "last_seen_at": at(4)}]
    )
    # the same values seen again: last_seen_at, when they last changed, stays
    assert merged(con, "songs", "song_added", "first_seen_at", "last_seen_at") == [(at(1), at(3), at(3))]


def test_last_seen_at_moves_only_when_the_values_change(con: duckdb.DuckDBPyConnection) -> None:
    load(con, "old_artists", "artists", [artist("a1", 1, name="One", followers=5)])
    load(con, "b_artists", "artists", [artist("a1", 4, name="One", followers=9)])  # a sticky column moved
    assert merged(con, "artists", "followers", "first_seen_at", "last_seen_at") == [(9, at(1), at(1))]
    load(con, "b_artists", "artists", [artist("a1", 4, name="Uno")])
    assert merged(con, "artists", "name", "last_seen_at") == [("Uno", at(4))]
    # the batch saw other values before these ones (last_seen_at after first_seen_at): they changed at 5
    load(con, "b_artists", "artists", [{**artist("a1", 4, name="One"), "last_seen_at": at(5)}])
    assert merged(con, "artists", "name", "last_seen_at") == [("One", at(5))]


def member(playlist: str, position: int, song: str, day: int) -> dict[str, Any]:
    return {"playlist_id": playlist, "position": position, "song_id": song, "extracted_at": at(day)}


def test_replace_children_by_the_parents_newest_time(con: duckdb.DuckDBPyConnection) -> None:
    rule = MERGES["playlist_songs"]
    assert isinstance(rule, ReplaceChildren) and rule.newer_by == "extracted_at"
    load(
        con,
        "old_playlist_songs",
        "playlist_songs",
        [member("p1", 0, "a", 2), member("p1", 1, "b", 2), member("p2", 0, "x", 2)],
    )

    def apply(*batch: dict[str, Any]) -> list[tuple[Any, ...]]:
        load(con, "b_playlist_songs", "playlist_songs", list(batch))
        return merged(con, "playlist_songs", "playlist_id", "position", "song_id")

    # an older extraction of p1 (day 1 < day 2) changes nothing
    assert apply(member("p1", 0, "c", 1)) == [("p1", 0, "a"), ("p1", 1, "b"), ("p2", 0, "x")]
    # a newer one replaces all of p1, p2 untouched; its rows carry one time per page, and the parent's newest
    # time decides, not each row's (position 0 is from day 1, yet replaces the day-2 row)
    assert apply(member("p1", 0, "c", 1), member("p1", 1, "d", 3)) == [("p1", 0, "c"), ("p1", 1, "d"), ("p2", 0, "x")]
    # a position the newer extraction lacks is gone
    assert apply(member("p1", 0, "e", 3)) == [("p1", 0, "e"), ("p2", 0, "x")]
    # a tie: the batch wins (so re-applying the batch that made the table is a no-op)
    assert apply(member("p1", 0, "f", 2)) == [("p1", 0, "f"), ("p2", 0, "x")]
    # a playlist emptied upstream (a complete extraction with no items) loses its rows, if newer than them
    con.execute("INSERT INTO e_playlist_songs VALUES ('p2', ?), ('p1', ?)", [at(3), at(1)])
    assert apply(member("p1", 0, "g", 2)) == [("p1", 0, "g")]


def test_replace_children_without_a_time_replaces_every_parent_the_batch_mentions(
    con: duckdb.DuckDBPyConnection,
) -> None:
    load(
        con,
        "old_song_artists",
        "song_artists",
        [
            {"song_id": "s1", "artist_id": "a1", "position": 0},
            {"song_id": "s1", "artist_id": "a2", "position": 1},
            {"song_id": "s2", "artist_id": "a3", "position": 0},
        ],
    )
    load(con, "b_song_artists", "song_artists", [{"song_id": "s1", "artist_id": "a9", "position": 0}])
    assert merged(con, "song_artists") == [("s1", "a9", 0), ("s2", "a3", 0)]


def _value(kind: pa.DataType, column: str, variant: int) -> Any:
    """A value of `kind` that differs per variant (a later variant: a later time)."""
    if pa.types.is_string(kind):
        return f"{column}-{variant}"
    if pa.types.is_boolean(kind):
        return variant % 2 == 0
    if pa.types.is_integer(kind):
        return variant
    if pa.types.is_timestamp(kind):
        return at(variant)
    if pa.types.is_date(kind):
        return at(variant).date()
    if pa.types.is_list(kind):
        return [f"{column}-{variant}"]
    raise AssertionError(f"no value for {kind}")


def _row(table: str, key: int, values: int) -> dict[str, Any]:
    spec = TABLES[table]
    return {f.name: _value(f.type, f.name, key if f.name in spec.key else values) for f in spec.schema}


OBSERVED = [n for n in DATA_TABLES if not isinstance(MERGES[n], Derived)]


@pytest.mark.parametrize("table", OBSERVED)
def test_applying_the_same_batch_twice_changes_nothing(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Old rows with keys 1 and 2; a batch with key 2 (newer, other values), key 3 and key 2's older twin."""
    load(con, f"old_{table}", table, [_row(table, 1, 1), _row(table, 2, 2)])
    load(con, f"b_{table}", table, [_row(table, 2, 5), _row(table, 3, 4)])
    once = merged(con, table)
    con.execute(f"CREATE OR REPLACE TABLE old_{table} AS SELECT * FROM ({merge_sql(table)})")
    twice = merged(con, table)
    assert twice == once
    key = [TABLES[table].schema.names.index(k) for k in TABLES[table].key]
    keys = [tuple(row[i] for i in key) for row in once]
    assert len(keys) == len(set(keys)) == 3, "each key once: 1 kept, 2 updated, 3 inserted"
    # key 2 has the batch's newer values, except the columns that keep the earliest
    names = TABLES[table].schema.names
    rule = MERGES[table]
    earliest = rule.earliest if isinstance(rule, KeyedMerge) else ()
    expected = {c: (_row(table, 2, 2) if c in earliest else _row(table, 2, 5))[c] for c in names}
    assert dict(zip(names, once[1], strict=True)) == expected


TIMED_REPLACE = [n for n, r in MERGES.items() if isinstance(r, ReplaceChildren) and r.newer_by]


@pytest.mark.parametrize("table", TIMED_REPLACE)
def test_replace_children_a_tie_goes_to_the_batch(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """A batch whose parent is exactly as new as the table's rows replaces them (`>=`, not `>`): re-applying
    the batch that made the table is then a no-op, and an extraction at the same instant is not lost."""
    rule = MERGES[table]
    assert isinstance(rule, ReplaceChildren) and rule.newer_by
    schema, key = TABLES[table].schema, TABLES[table].key
    child = [k for k in key if k not in rule.parent]

    def row(variant: int, day: int) -> dict[str, Any]:
        values = {c: _value(schema.field(c).type, c, 1) for c in rule.parent}
        return {**values, **{c: _value(schema.field(c).type, c, variant) for c in child}, rule.newer_by: at(day)}

    def children(*batch: dict[str, Any]) -> set[tuple[Any, ...]]:
        load(con, f"b_{table}", table, list(batch))
        return set(merged(con, table, *child))

    load(con, f"old_{table}", table, [row(1, 2), row(2, 2)])
    old = {(_value(schema.field(c).type, c, v),) for c in child for v in (1, 2)}
    assert children(row(3, 1)) == old  # an older batch changes nothing
    assert children(row(3, 2)) == {(_value(schema.field(c).type, c, 3),) for c in child}  # a tie: the batch
    if rule.emptied:  # emptied upstream at the same instant as the table's rows: they go
        con.execute(f"INSERT INTO {rule.emptied} SELECT {', '.join(rule.parent)}, ? FROM old_{table}", [at(2)])
        assert children() == set()


@pytest.mark.parametrize("table", OBSERVED)
def test_a_batch_merged_into_no_rows_is_staged_as_it_is(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """With no old rows, the merge (keyed, or replacing children: every parent of the batch wins) is the batch
    itself: `staged_<table>` is the batch's table, renamed (no copy of the rows), holding exactly what the
    merge computes, and still a table a hook can change; `b_<table>` reads the same rows."""
    load(con, f"old_{table}", table, [])
    load(con, f"b_{table}", table, [_row(table, 1, 1), _row(table, 2, 5), _row(table, 3, 4)])
    expected = merged(con, table)
    assert stage_batch_as_merged(con, table)
    names = ", ".join(TABLES[table].schema.names)
    assert sorted(con.execute(f"SELECT {names} FROM staged_{table}").fetchall(), key=repr) == expected
    assert sorted(con.execute(f"SELECT {names} FROM b_{table}").fetchall(), key=repr) == expected
    con.execute(f"DELETE FROM staged_{table}")  # a table, as a stage hook expects


def test_a_batch_is_merged_when_there_are_old_rows_or_its_columns_differ(con: duckdb.DuckDBPyConnection) -> None:
    load(con, "old_artists", "artists", [artist("a1", 1, name="One")])
    load(con, "b_artists", "artists", [artist("a2", 2, name="Two")])
    assert not stage_batch_as_merged(con, "artists")  # old rows: merged
    load(con, "old_artists", "artists", [])
    con.execute("ALTER TABLE b_artists ALTER popularity TYPE BIGINT")  # a type the merge would unify
    assert not stage_batch_as_merged(con, "artists")
    load(con, "old_playlist_songs", "playlist_songs", [])
    load(con, "b_playlist_songs", "playlist_songs", [member("p1", 0, "s1", 1), member("p1", 1, "s2", 1)])
    con.execute("UPDATE b_playlist_songs SET playlist_id = NULL WHERE position = 1")  # the merge drops it
    assert not stage_batch_as_merged(con, "playlist_songs")
    assert not stage_batch_as_merged(con, "artist_stats")  # derived: computed, never a batch
    assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE 'staged_%'").fetchall() == [(0,)]
