"""A run costs what changed (issue #20): the keys a batch changes, and the only old rows its merge reads.

A merge (merge.py) changes only the rows whose cluster column (tables/catalog.py `cluster_column`, a key
column of every table) takes a value its batch holds; every other row stays exactly as it was. So a run
whose batch names a few keys merges, checks and publishes only those keys' rows:

    keys_<t>      the cluster-column values the batch holds (and the playlists emptied upstream)
    touched_<t>   the old rows holding one of them, read once into a temp table: `old_<t>` filtered by a
                  semi-join, which DuckDB pushes into the Parquet scan as a dynamic filter (an IN list,
                  min/max, a Bloom filter), so row groups whose statistics rule every changed value out
                  are never read (tables are sorted by that column in files of `PUBLISH_ROWS` rows)
    staged_<t>    the merged rows of those values only (merge.py reading `touched_<t>` as the old rows)
    new_<t>       the whole table after the merge, a view: `old_<t>` but for the changed values, then
                  `staged_<t>`; what a derived table, a whole-table check and a whole-table publish read

A time series clustered by day (`song_popularity`, `plays`, ...: a keyed merge whose key has more columns
than the cluster column) is merged by its batch's whole keys instead, when its publish replaces whole keys
(merge-on-read: publish.py `by_whole_key`): `touched_<t>` holds the old rows of the batch's keys, not of its
days, `staged_<t>` their merged rows, and `new_<t>` keeps every other row. A day's rows are every song
observed that day (at 10M items the first day held 2.9M rows); a run seeing 133 songs again merged, compared
and checked all of them (docs/BENCHMARKS.md).

A table is merged whole instead (`touched_<t>` is then all of `old_<t>`, `staged_<t>` the whole table and
`new_<t>` a view of it) on a rebuild, for a table with no rows yet, when the batch holds more keys than
`MAX_REPLACED_KEYS` and more than `WHOLE_SHARE` of the table's rows, or a NULL one, and for `listen_events`, which
history/listens.py reads whole as `staged_listen_events`.
"""

from __future__ import annotations

from typing import Any

import duckdb

from ..tables.catalog import MAX_REPLACED_KEYS, cluster_column
from ..tables.contract import TABLES
from .merge import MERGES, Derived, KeyedMerge, ReplaceChildren
from .relations import checked_step

# Read whole by a derived table's SQL as `staged_<t>` (history/listens.py), or derived from such a table.
WHOLE = ("listen_events", "listens")


def changed_keys_sql(name: str) -> str:
    """The cluster-column values of `name` whose rows the batch can change (`b_<name>`, and a playlist
    emptied upstream: `ReplaceChildren.emptied`)."""
    rule, column = MERGES[name], cluster_column(name)
    if isinstance(rule, Derived):
        return rule.changed_sql
    emptied = rule.emptied if isinstance(rule, ReplaceChildren) else None
    return f"SELECT {column} FROM b_{name}" + (f" UNION SELECT {column} FROM {emptied}" if emptied else "")


# A batch naming more keys than `MAX_REPLACED_KEYS` is still merged and published by its keys while they
# are at most this share of the table's rows; past it, the whole table is the cheaper write. The cap alone
# made a 1% run at 1M items (~10,000 of 293,000 songs) rewrite `songs` and `song_artists` whole whenever it
# named a few more songs than 10,000: 27 of a week's 168 runs, 35% of the table bytes each
# (docs/BENCHMARKS.md). The same third as a data file's rewrite (tables/replace.py `REWRITE_SHARE`).
WHOLE_SHARE = 1 / 3


def keyed(keys: int, table_rows: int) -> bool:
    """Whether `keys` changed keys of a table of `table_rows` rows are merged and replaced by key."""
    return keys <= max(MAX_REPLACED_KEYS, int(table_rows * WHOLE_SHARE))


def scope(
    con: duckdb.DuckDBPyConnection,
    name: str,
    allowed: bool,
    nothing: bool = False,
    table_rows: int = 0,
    by_key: bool = False,
) -> bool:
    """The step `scope_<name>`: `keys_<name>` and `touched_<name>`. True when the table is merged by its
    changed keys only; False (`allowed` false, too many keys for a table of `table_rows` rows: `keyed`, a
    NULL key): merged whole. `nothing`: no key can change (a derived table whose inputs did not change).
    `by_key`: a scoped merge touches only the old rows of the batch's whole keys (module docstring)."""
    column = cluster_column(name)
    keys_sql = f"SELECT {column} FROM old_{name} WHERE false" if nothing else changed_keys_sql(name)
    rule = MERGES[name]
    with checked_step(con, f"scope_{name}"):
        if isinstance(rule, Derived) and rule.prepare_changes is not None:
            rule.prepare_changes(con, nothing)  # what its `changed_sql` reads
        con.execute(f"CREATE OR REPLACE TEMP TABLE keys_{name} AS SELECT DISTINCT {column} FROM ({keys_sql})")
        keys, nulls = con.execute(f"SELECT count(*), count(*) - count({column}) FROM keys_{name}").fetchall()[0]
        scoped = allowed and name not in WHOLE and keyed(keys, table_rows) and not nulls
        if scoped:  # read from the Parquet files once: the merge, `differs`, the checks and a derived
            # table's scope each read it again (a view re-planned and re-scanned the files each time)
            sql, values = touched_query(con, name, by_key)
            con.execute(f"CREATE OR REPLACE TEMP TABLE touched_{name} AS {sql}", values)
        else:
            con.execute(f"CREATE OR REPLACE TEMP VIEW touched_{name} AS SELECT * FROM old_{name}")
    return scoped


def touched_sql(name: str, by_key: bool = False) -> str:
    """The old rows of the changed keys of a table merged by them: what `touched_<name>` holds. `by_key`:
    only those of the batch's whole keys (the cluster column's filter first, for the scan's pruning)."""
    column = cluster_column(name)
    rows = f"SELECT * FROM old_{name} x WHERE {column} IN (SELECT {column} FROM keys_{name})"
    return f"{rows} AND {_batch_key(name)}" if by_key else rows


# Changed values named to the Parquet scan as constants, per column, at most. A semi-join's keys reach the
# scan only as their min/max (and an IN list below 50 values), which random ids (songs, artists) spread over
# the whole table: every row group was read. Constants are checked against each row group's statistics.
PRUNING_VALUES = 1_000


def touched_query(con: duckdb.DuckDBPyConnection, name: str, by_key: bool = False) -> tuple[str, list[Any]]:
    """`touched_sql` and its parameters: the same rows, with the changed values of the column the table is
    sorted by (and, `by_key`, of the key's next column, the sort within a day) also as constants, so that
    only the row groups whose statistics may hold one are read (at most `PRUNING_VALUES` each)."""
    sql, params = touched_sql(name, by_key), []
    column = cluster_column(name)
    named = [(column, f"keys_{name}")]
    if by_key:
        named += [(k, f"b_{name}") for k in TABLES[name].key if k != column][:1]
    for col, source in named:
        found = con.execute(
            f"SELECT DISTINCT {col} FROM {source} WHERE {col} IS NOT NULL LIMIT {PRUNING_VALUES + 1}"
        ).fetchall()
        if 0 < len(found) <= PRUNING_VALUES:
            sql += f" AND x.{col} IN ({', '.join('?' * len(found))})"
            params += [v for (v,) in found]
    return sql, params


def unchanged_sql(name: str, by_key: bool = False) -> str:
    """The old rows a scoped merge keeps as they are, outside `touched_<name>` (a subquery): the rows of the
    other cluster values, or (`by_key`) of the keys the batch does not hold."""
    if by_key:
        return f"(SELECT * FROM old_{name} x WHERE NOT {_batch_key(name)})"
    column = cluster_column(name)
    return f"(SELECT * FROM old_{name} WHERE {column} NOT IN (SELECT {column} FROM keys_{name}))"


def stray_sql(name: str, by_key: bool = False) -> str:
    """The staged rows outside what `touched_<name>` covered (a subquery): none from a merge, which stages
    only the batch's keys or cluster values; a staged row outside them could repeat a key `new_<name>`
    also keeps from `unchanged_sql`, so the key check looks those up (quality/checks.py)."""
    if by_key:
        return f"(SELECT * FROM staged_{name} x WHERE NOT {_batch_key(name)})"
    column = cluster_column(name)
    return f"(SELECT * FROM staged_{name} WHERE {column} NOT IN (SELECT {column} FROM keys_{name}))"


def whole_table(con: duckdb.DuckDBPyConnection, name: str, scoped: bool, by_key: bool = False) -> None:
    """`new_<name>`: the table after the merge. Built inside the step `stage_<name>`."""
    if scoped:
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW new_{name} AS SELECT * FROM {unchanged_sql(name, by_key)} "
            f"UNION ALL SELECT * FROM staged_{name}"
        )
    else:
        con.execute(f"CREATE OR REPLACE TEMP VIEW new_{name} AS SELECT * FROM staged_{name}")


def differs(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether the merge changed any row of a table merged by its changed keys: if not, there is nothing to
    commit (the batch saw the same rows again). A keyed merge passes every old row whose key the batch
    lacks through as it was, so with as many rows staged as touched only the batch's keys are compared
    (`song_popularity` touches a whole day's rows for a few songs observed again)."""
    touched, staged = f"touched_{name}", f"staged_{name}"
    if rows(con, touched) != rows(con, staged):
        return True
    if isinstance(MERGES[name], KeyedMerge):
        touched = f"(SELECT * FROM {touched} x WHERE {_batch_key(name)})"
        staged = fresh_sql(name)
    sql = (
        f"SELECT EXISTS (SELECT * FROM {staged} EXCEPT ALL SELECT * FROM {touched})"
        f" OR EXISTS (SELECT * FROM {touched} EXCEPT ALL SELECT * FROM {staged})"
    )
    return bool(con.execute(sql).fetchall()[0][0])


def rows(con: duckdb.DuckDBPyConnection, relation: str) -> int:
    return int(con.execute(f"SELECT count(*) FROM {relation}").fetchall()[0][0])


def rows_after(con: duckdb.DuckDBPyConnection, name: str, scoped: bool, old_rows: int) -> int:
    """Rows of `name` after the merge, without reading the rows it kept: `old_rows` (the base snapshot's
    live rows, from its metadata: snapshots.py), less the touched rows, plus the staged ones."""
    staged = rows(con, f"staged_{name}")
    return old_rows - rows(con, f"touched_{name}") + staged if scoped else staged


def _batch_key(name: str) -> str:
    on = " AND ".join(f"b.{k} = x.{k}" for k in TABLES[name].key)
    return f"EXISTS (SELECT 1 FROM b_{name} b WHERE {on})"


def fresh_sql(name: str) -> str:
    """The staged rows a scoped merge may have changed (a subquery): a keyed merge's rows of the batch's
    keys (it passes the other touched rows through: `song_popularity` touches a whole day for a few songs);
    every staged row otherwise."""
    if isinstance(MERGES[name], KeyedMerge):
        return f"(SELECT * FROM staged_{name} x WHERE {_batch_key(name)})"
    return f"staged_{name}"


def kept_sql(name: str) -> str:
    """The old rows a scoped merge kept as they were, outside `fresh_sql` (a subquery)."""
    if isinstance(MERGES[name], KeyedMerge):
        return f"(SELECT * FROM old_{name} x WHERE NOT {_batch_key(name)})"
    column = cluster_column(name)
    return f"(SELECT * FROM old_{name} WHERE {column} NOT IN (SELECT {column} FROM keys_{name}))"


def gone_sql(name: str) -> str:
    """The cluster-column values a scoped merge left with no row (a subquery of one column, `k`)."""
    column = cluster_column(name)
    return f"(SELECT {column} AS k FROM touched_{name} EXCEPT SELECT {column} FROM staged_{name})"
