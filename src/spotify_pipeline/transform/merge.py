"""Idempotent merges of a batch (`b_<table>`) into a table's current rows (`old_<table>`), in DuckDB SQL.

Merging the same batch twice gives the same rows; processing raw runs one by one or all at once gives the
same rows. Each rule is declared per table below: which column decides which observation is newer, which
columns keep their last known value when a newer observation lacks them (fields an access mode stopped
returning are not wiped), and which keep their earliest or latest value. The relations merged, and their
columns, are declared in transform/relations.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import duckdb

from ..history.listens import LISTENS_SQL, stage_listens
from ..tables.contract import TABLES
from . import artist_stats


@dataclass(frozen=True)
class KeyedMerge:
    """One row per key; the newer observation wins column by column, except the special columns."""

    newer_by: str
    sticky: tuple[str, ...] = ()  # keep the old value where the newer row has NULL
    earliest: tuple[str, ...] = ("first_seen_at",)
    latest: tuple[str, ...] = ()
    # When the row's values last changed (songs, albums, artists: `last_seen_at`; partials.py, "Streaks"). The
    # batch's value is the start of its last streak; the old one stays when the batch saw one streak only
    # (its value is its first sighting, `first_seen_at`) of the same `compared` values: seen again unchanged,
    # the row is not rewritten.
    changed_at: str = ""
    compared: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReplaceChildren:
    """Rows grouped by a parent key; a batch replaces all rows of each parent it mentions."""

    parent: tuple[str, ...]
    newer_by: str | None = None  # when set, replace only where the batch's parent is at least as new
    extra_columns: tuple[str, ...] = field(default=())
    # A relation (parent..., newer_by) of parents observed with no children at all (a playlist emptied
    # upstream): they replace their rows by none. Needs `newer_by`.
    emptied: str | None = None


@dataclass(frozen=True)
class Derived:
    """Recomputed from other tables' merged rows (`new_<table>`, the whole table after the merge): a summary,
    not observations. With `changed_sql`, a small run recomputes only the keys whose rows its inputs' changes
    can move (transform/scope.py): `changed_sql` selects those keys from the inputs' `touched_` (old) and
    `staged_` (new) rows of the changed keys, `changed_rows_sql` recomputes them, reading `keys_<table>`.
    `prepare_changes` builds, inside the scope step, what `changed_sql` reads; `stage_changed` builds
    `staged_<table>` for those keys its own cheaper way, instead of `changed_rows_sql`."""

    sql: str
    inputs: tuple[str, ...] = ()  # the tables it is computed from: unchanged inputs, unchanged table
    changed_sql: str = ""
    changed_rows_sql: str = ""
    # Builds `staged_<table>` with the rows of `sql` its own cheaper way (when whole; `stage_derived`).
    stage: Callable[[duckdb.DuckDBPyConnection], None] | None = None
    # Called as `prepare_changes(con, nothing)` in `scope_<table>` (`nothing`: no input changed).
    prepare_changes: Callable[[duckdb.DuckDBPyConnection, bool], None] | None = None
    stage_changed: Callable[[duckdb.DuckDBPyConnection], object] | None = None


MERGES: dict[str, KeyedMerge | ReplaceChildren | Derived] = {
    "artists": KeyedMerge(
        "last_seen_at",
        sticky=("genres", "followers", "popularity", "image_url", "enriched_at"),
        changed_at="last_seen_at",
        compared=("name", "uri", "url"),
    ),
    "albums": KeyedMerge(
        "last_seen_at",
        sticky=("label", "upc", "popularity", "enriched_at"),
        changed_at="last_seen_at",
        compared=(
            "name",
            "album_type",
            "release_date",
            "release_date_precision",
            "release_date_raw",
            "total_tracks",
            "uri",
            "url",
            "image_url",
        ),
    ),
    "songs": KeyedMerge(
        "last_seen_at",
        sticky=("popularity", "isrc", "duration_ms"),
        earliest=("first_seen_at", "song_added"),
        changed_at="last_seen_at",
        compared=("name", "explicit", "disc_number", "track_number", "album_id", "artist_id", "uri", "url"),
    ),
    "playlists": KeyedMerge("extracted_at", sticky=("items_extracted_at",), earliest=(), latest=()),
    "song_popularity": KeyedMerge("observed_at", earliest=(), latest=()),
    "playlist_changes": KeyedMerge("changed_at", earliest=(), latest=()),
    "saved_songs": ReplaceChildren(("user_id",), newer_by="extracted_at"),
    "plays": KeyedMerge("extracted_at", earliest=(), latest=()),
    "user_top": KeyedMerge("observed_at", earliest=(), latest=()),
    "listen_events": KeyedMerge("imported_at", earliest=("imported_at",), latest=()),
    # One row per listen, matched across sources by the rule in history/listens.py, from every event.
    "listens": Derived(LISTENS_SQL, inputs=("listen_events",), stage=stage_listens),
    "album_artists": ReplaceChildren(("album_id",)),
    "song_artists": ReplaceChildren(("song_id",)),
    "playlist_songs": ReplaceChildren(("playlist_id",), newer_by="extracted_at", emptied="e_playlist_songs"),
    # What the top_artists report reads: a 1M-position join is ~300 ms per query, this lookup ~1 ms.
    "artist_stats": Derived(
        artist_stats.ARTIST_STATS_SQL.format(where=""),
        inputs=("playlist_songs", "song_artists"),
        # An artist's counts move only if one of its songs gained or lost a position or an artist credit:
        # the artists credited, before or after, on the songs of the changed positions and credits; their
        # rows are the stored ones plus the changes (transform/artist_stats.py).
        stage=artist_stats.stage_whole,  # the same rows in passes over slices of the artists
        changed_sql=artist_stats.CHANGED_SQL,
        changed_rows_sql=artist_stats.CHANGED_ROWS_SQL,
        prepare_changes=artist_stats.build_credits,
        stage_changed=artist_stats.stage_changed,
    ),
}


def merge_sql(table: str, old: str = "") -> str:
    """SELECT producing the merged rows of `table` from `b_<table>` and `old` (default `old_<table>`; the
    transform passes `touched_<table>`, the old rows of the keys the batch holds: transform/scope.py)."""
    rule = MERGES[table]
    if isinstance(rule, Derived):
        return rule.sql
    spec = TABLES[table]
    columns = spec.schema.names
    new, old = f"b_{table}", old or f"old_{table}"
    if isinstance(rule, ReplaceChildren):
        return _replace_children_sql(rule, columns, new, old)

    key = spec.key
    join = " AND ".join(f"n.{k} = o.{k}" for k in key)
    n_missing = f"n.{key[0]} IS NULL"
    o_missing = f"o.{key[0]} IS NULL"
    n_newer = f"n.{rule.newer_by} >= o.{rule.newer_by}"
    select = []
    for col in columns:
        if col in key:
            expr = f"coalesce(n.{col}, o.{col})"
        elif col in rule.earliest:
            expr = f"least(n.{col}, o.{col})"
        elif col in rule.latest:
            expr = f"greatest(n.{col}, o.{col})"
        elif col == rule.changed_at:
            same = " AND ".join(
                [f"n.{col} = n.first_seen_at", *(f"n.{c} IS NOT DISTINCT FROM o.{c}" for c in rule.compared)]
            )
            expr = (
                f"CASE WHEN {o_missing} THEN n.{col} WHEN {n_missing} THEN o.{col} "
                f"WHEN NOT ({n_newer}) OR ({same}) THEN o.{col} ELSE n.{col} END"
            )
        elif col in rule.sticky:
            expr = (
                f"CASE WHEN {o_missing} THEN n.{col} WHEN {n_missing} THEN o.{col} "
                f"WHEN {n_newer} THEN coalesce(n.{col}, o.{col}) ELSE coalesce(o.{col}, n.{col}) END"
            )
        else:
            expr = (
                f"CASE WHEN {o_missing} THEN n.{col} WHEN {n_missing} THEN o.{col} "
                f"WHEN {n_newer} THEN n.{col} ELSE o.{col} END"
            )
        select.append(f"{expr} AS {col}")
    return f"SELECT {', '.join(select)}\nFROM {new} n FULL OUTER JOIN {old} o ON {join}"


def stage_derived(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """`staged_<table>` of a derived table recomputed whole: its rule's rows, by its own `stage` if it has one."""
    rule = MERGES[table]
    if not isinstance(rule, Derived):
        raise TypeError(f"{table} is not a derived table")
    if rule.stage is not None:
        rule.stage(con)
    else:
        con.execute(f"CREATE TEMP TABLE staged_{table} AS {rule.sql}")


def stage_batch_as_merged(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Stage a merge into a table with no rows (a first import, a rebuild) without running it: merged with no
    old row, every batch row comes out as it is (a keyed merge: each column `n.col`, `least`/`greatest` skip
    the NULL; replacing children: every parent of the batch wins, there being none old), so `b_<table>` is
    renamed `staged_<table>` and `b_<table>` becomes a view of it: no copy of the rows (the merge copied 1M
    wide `listen_events` rows, ~0.7 CPU s, to get the same ones; 1M positions went through the winners'
    joins). Only when the batch has exactly the table's columns and types (else the merge's CASE or UNION
    would unify them), and, replacing children, no row without its parent (which no parent matches: the
    merge leaves it out). False, having changed nothing: run the merge (`merge_sql`)."""
    rule = MERGES[table]
    if isinstance(rule, Derived):
        return False
    if con.execute(f"SELECT EXISTS (SELECT 1 FROM old_{table})").fetchall()[0][0]:
        return False
    columns = "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ? ORDER BY column_index"
    batch = con.execute(columns, [f"b_{table}"]).fetchall()
    is_table = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [f"b_{table}"]).fetchall()
    if batch != con.execute(columns, [f"old_{table}"]).fetchall() or is_table != [(1,)]:
        return False
    if isinstance(rule, ReplaceChildren):
        orphans = " OR ".join(f"{c} IS NULL" for c in rule.parent)
        if con.execute(f"SELECT EXISTS (SELECT 1 FROM b_{table} WHERE {orphans})").fetchall()[0][0]:
            return False
    con.execute(f"ALTER TABLE b_{table} RENAME TO staged_{table}")
    con.execute(f"CREATE TEMP VIEW b_{table} AS SELECT * FROM staged_{table}")
    return True


def _replace_children_sql(rule: ReplaceChildren, columns: list[str], new: str, old: str) -> str:
    """Each parent's rows come wholly from the batch or wholly from the table. With `newer_by`, the side
    whose newest row for that parent is newer wins (the batch on a tie, so re-applying a batch is a no-op):
    comparing parents, not rows, matters because one extraction's rows carry different times (one per page)."""
    cols = ", ".join(columns)
    parent = ", ".join(rule.parent)
    if not rule.newer_by:
        on = " AND ".join(f"o.{c} = n.{c}" for c in rule.parent)
        return (
            f"SELECT {cols} FROM {old} o WHERE NOT EXISTS (SELECT 1 FROM {new} n WHERE {on})\n"
            f"UNION ALL\nSELECT {cols} FROM {new}"
        )
    by = rule.newer_by
    batch = new
    if rule.emptied:
        batch = f"(SELECT {parent}, {by} FROM {new} UNION ALL SELECT {parent}, {by} FROM {rule.emptied})"
    match = " AND ".join(f"w.{c} = {{side}}.{c}" for c in rule.parent)
    winners = (
        f"(SELECT {', '.join(f'n.{c}' for c in rule.parent)} "
        f"FROM (SELECT {parent}, max({by}) AS newest FROM {batch} GROUP BY ALL) n "
        f"LEFT JOIN (SELECT {parent}, max({by}) AS newest FROM {old} GROUP BY ALL) o "
        f"ON {' AND '.join(f'o.{c} = n.{c}' for c in rule.parent)} "
        f"WHERE o.newest IS NULL OR n.newest >= o.newest)"
    )
    return (
        f"SELECT {cols} FROM {old} o WHERE NOT EXISTS (SELECT 1 FROM {winners} w WHERE {match.format(side='o')})\n"
        f"UNION ALL\nSELECT {cols} FROM {new} n WHERE EXISTS (SELECT 1 FROM {winners} w WHERE {match.format(side='n')})"
    )
