"""Publishing the staged tables: each table's base (`old_<name>`), the rows of only the keys a run changed
replaced in sorted files (or the table overwritten whole), and the bookkeeping tables written beside them
(`rejected_records`, `listening_gaps`); refused up front when the disk cannot hold the staged rows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import LakeError
from ..history.listens import insertion_order, listens_changed
from ..tables.catalog import MAX_REPLACED_KEYS, Catalog, cluster_column
from ..tables.contract import TABLES
from ..tables.deletes import merges_on_read
from .connection import register_empty, register_table
from .merge import MERGES, Derived, KeyedMerge, ReplaceChildren
from .quarantine import Rejected
from .relations import checked_step
from .scope import changed_keys_sql

# Rows per slice written to a table (one Parquet file each). In a 10M-item rebuild with DuckDB capped at 1 GB,
# publishing 500k-row slices of `songs` (Arrow slice, its cast, the Parquet writer) set the peak RSS: +475 MiB;
# 200k-row slices: +178 MiB (docs/BENCHMARKS.md). Smaller files also make a run that changes a few keys
# rewrite less: it rewrites every file holding one of them (catalog.py `CLUSTER_BY`).
PUBLISH_ROWS = 50_000


def register_base(con: duckdb.DuckDBPyConnection, catalog: Catalog, name: str, base: dict[str, int | None]) -> None:
    """`old_<name>`: the table as it stood when this transform (or the interrupted one it redoes) began."""
    with checked_step(con, f"register_{name}"):
        if base.get(name) is None:
            register_empty(con, f"old_{name}", TABLES[name].schema)
        else:
            register_table(con, catalog, name, f"old_{name}", base[name])


# Whether a table whose merge changed some keys is published by replacing only their rows (False: the
# layout before issue #20, every changed table overwritten whole; bench/steady_state.py --no-layout).
FILTERED_PUBLISH = True


def sort_order(name: str) -> str:
    """The cluster column, then the rest of the key: rows in key order compress 1-2% better (1M positions).
    (Empty: no order, as tables were written before issue #20.)"""
    column = cluster_column(name)
    return ", ".join([column, *(k for k in TABLES[name].key if k != column)]) if column in TABLES[name].key else column


# Derived tables whose changed rows a narrower query finds than comparing every row both ways.
NARROW_CHANGES: dict[str, Callable[[str], str]] = {"listens": listens_changed}


def _changed_keys(name: str) -> str:
    """A query of the `cluster_column` values whose rows the merge may have changed; every other value's
    rows in `staged_<name>` are exactly those of `old_<name>`. A keyed merge changes only the keys its batch
    holds (and a playlist emptied upstream, `ReplaceChildren.emptied`), and of those only the ones whose rows
    differ (`_differing_keys`); a derived table is compared whole, unless `NARROW_CHANGES` has a narrower
    query for it."""
    rule, column = MERGES[name], cluster_column(name)
    if name in NARROW_CHANGES:
        return NARROW_CHANGES[name](column)
    if isinstance(rule, Derived):
        return (
            f"SELECT {column} FROM (SELECT * FROM staged_{name} EXCEPT SELECT * FROM old_{name}) UNION "
            f"SELECT {column} FROM (SELECT * FROM old_{name} EXCEPT SELECT * FROM staged_{name})"
        )
    if by_cluster_value(name):
        batch = f"(SELECT {column} FROM ({changed_keys_sql(name)}))"
        return _differing_keys(
            name,
            f"(SELECT * FROM staged_{name} WHERE {column} IN {batch})",
            f"(SELECT * FROM old_{name} WHERE {column} IN {batch})",
        )
    return changed_keys_sql(name)


def by_cluster_value(name: str) -> bool:
    """Whether a merge decides each cluster-column value's rows as one (a keyed merge keyed by that column
    alone, children replaced by that parent): then a value whose merged rows equal its old rows needs no
    write. (A time series clustered by day replaces single keys of a day: publish.py `_by_whole_key`.)"""
    rule, column = MERGES[name], cluster_column(name)
    if isinstance(rule, KeyedMerge):
        return TABLES[name].key == (column,)
    return isinstance(rule, ReplaceChildren) and rule.parent == (column,)


def _differing_keys(name: str, staged: str, old: str) -> str:
    """The cluster-column values whose rows differ between `staged` and `old` (subqueries): a song seen again
    with nothing new, its credits the same, is not written again (issue #20: such rows were most of a small
    run's writes)."""
    column = cluster_column(name)
    return (
        f"SELECT {column} FROM (SELECT * FROM {staged} EXCEPT ALL SELECT * FROM {old}) UNION "
        f"SELECT {column} FROM (SELECT * FROM {old} EXCEPT ALL SELECT * FROM {staged})"
    )


def _literal(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dt.date):  # and datetimes: ISO-8601 with the offset, as pyiceberg parses them
        return value.isoformat()
    return str(value)


def _publish_changes(
    con: duckdb.DuckDBPyConnection, catalog: Catalog, name: str, rebuild: bool, base: dict[str, int | None]
) -> bool:
    """Publish only the rows of the keys this batch changed (`_changed_keys`): the merge takes every other
    key's rows unchanged from `old_<name>`, the base snapshot, so the table needs only those rows replaced -
    if it still is at the base snapshot. A transform redoing an interrupted publish that had already
    committed this table finds it past its base and overwrites it whole, as before (transform/journal.py).
    False, having written nothing: overwrite the whole table (a rebuild, a new table, too many keys)."""
    if not FILTERED_PUBLISH or rebuild or base.get(name) is None or catalog.snapshot_id(name) != base[name]:
        return False
    column = cluster_column(name)
    if isinstance(MERGES[name], Derived):  # compared with its rows as they stood
        register_base(con, catalog, name, base)
    changed = _changed_keys(name)
    con.execute(f"CREATE OR REPLACE TEMP TABLE changed_{name} AS SELECT DISTINCT {column} FROM ({changed})")
    # As ISO text: pyiceberg converts a string literal to the column's type (dates, timestamps) when binding.
    keys = [_literal(k) for (k,) in con.execute(f"SELECT {column} FROM changed_{name}").fetchall()]
    if len(keys) > MAX_REPLACED_KEYS or None in keys:  # no IN filter matches NULL: the whole table, then
        return False
    if not keys:  # the batch's keys all merged to the rows they had: nothing to write
        return True
    _replace(
        con, catalog, name, keys, f"SELECT * FROM staged_{name} WHERE {column} IN (SELECT {column} FROM changed_{name})"
    )
    return True


def _replace(con: duckdb.DuckDBPyConnection, catalog: Catalog, name: str, keys: list[Any], changed_rows: str) -> None:
    """Replace the rows of the cluster values `keys` by `changed_rows` (`Catalog.replace_rows`), or, for a
    time series that marks rows deleted, only the rows of the whole keys the batch holds (`by_whole_key`)."""
    key_rows = None
    if by_whole_key(con, catalog, name):  # e.g. a day of song_popularity: only the songs the batch saw
        key = ", ".join(TABLES[name].key)
        key_rows = con.sql(f"SELECT DISTINCT {key} FROM b_{name}").to_arrow_table()
        changed_rows = f"SELECT * FROM staged_{name} SEMI JOIN (SELECT DISTINCT {key} FROM b_{name}) USING ({key})"
    rows = con.sql(f"{changed_rows} ORDER BY {sort_order(name)}")
    catalog.replace_rows(name, cluster_column(name), keys, rows.to_arrow_reader(PUBLISH_ROWS), key_rows)


def by_whole_key(con: duckdb.DuckDBPyConnection, catalog: Catalog, name: str) -> bool:
    """Whether a keyed merge's changes are replaced by its whole key rather than by its cluster column:
    when the key has more columns (a time series clustered by day replaces only the keys its batch holds,
    not the whole day) and the table marks replaced rows deleted (a copy-on-write replace could only drop
    whole cluster values). Not with a NULL in a key column, which no join matches."""
    key = TABLES[name].key
    if (
        not isinstance(MERGES[name], KeyedMerge)
        or key == (cluster_column(name),)
        or not merges_on_read(catalog.table(name))
    ):
        return False
    nulls = " OR ".join(f"{k} IS NULL" for k in key)
    return not con.execute(f"SELECT count(*) FROM b_{name} WHERE {nulls}").fetchall()[0][0]


def _drop_changed(con: duckdb.DuckDBPyConnection, name: str) -> None:
    con.execute(f"DROP TABLE IF EXISTS changed_{name}")  # scratch: it lives only inside the publish step


def _nothing_to_create(
    con: duckdb.DuckDBPyConnection, catalog: Catalog, name: str, base: dict[str, int | None]
) -> bool:
    """A table that does not exist and would be created empty is not created: a history import into an empty
    lake would otherwise create a dozen empty playlist tables (~0.5 s at every first import), and every
    reader treats a missing table as empty (connection.py `register_table`, query/engine.py). Derived tables
    are always created: the runner rebuilds a lake whose derived table is missing (runner.py). So is every
    table of a Glue catalog: Athena, which reads it directly, fails on a table that does not exist."""
    if catalog.remote or isinstance(MERGES[name], Derived):
        return False
    if base.get(name) is not None or name in catalog.table_names():
        return False
    return not con.execute(f"SELECT EXISTS (SELECT 1 FROM staged_{name})").fetchall()[0][0]


# A table whose rows are, when as many, exactly another's, published before it: `listens` is the events the
# rule keeps, each a copy of its `listen_events` row (history/listens.py), so with as many rows as
# `listen_events` (a first import of one download: no event dropped) it is `listen_events`, and its files are
# copies of those just written rather than the same rows sorted and encoded again.
TWINS: dict[str, str] = {"listens": "listen_events"}


def _publish_as_twin(con: duckdb.DuckDBPyConnection, catalog: Catalog, name: str, source: str) -> bool:
    """Overwrite `name` with copies of its twin's data files when its `source` rows are the twin's current
    rows (`TWINS`: as many, and a subset by construction; the twin is published whole or by its changed
    keys just before, so its current snapshot holds `new_<twin>`). False, having written nothing: publish
    the rows. Only where both tables are written in the same order, so the copies are laid out as
    `name`'s own files would be."""
    twin = TWINS.get(name)
    if twin is None or sort_order(name) != sort_order(twin) or twin not in catalog.table_names():
        return False
    rows = con.execute(f"SELECT count(*) FROM {source}").fetchall()[0][0]
    if rows == 0 or rows != con.execute(f"SELECT count(*) FROM new_{twin}").fetchall()[0][0]:
        return False
    return catalog.overwrite_as_copy(name, twin, rows)


def _publish_scoped(con: duckdb.DuckDBPyConnection, catalog: Catalog, name: str) -> None:
    """Replace the rows of the keys a table merged by its changed keys (scope.py) staged: those whose
    merged rows differ from their old ones (`_differing_keys`) where the merge decides by cluster value,
    else every key the batch holds."""
    column = cluster_column(name)
    keys_sql = f"SELECT {column} FROM keys_{name}"
    if by_cluster_value(name):
        keys_sql = _differing_keys(name, f"staged_{name}", f"touched_{name}")
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE changed_{name} AS SELECT DISTINCT {column} FROM ({keys_sql})")
        keys = [_literal(k) for (k,) in con.execute(f"SELECT {column} FROM changed_{name}").fetchall()]
        if keys:
            rows = f"SELECT * FROM staged_{name} WHERE {column} IN (SELECT {column} FROM changed_{name})"
            _replace(con, catalog, name, keys, rows)
    finally:
        _drop_changed(con, name)


def publish_table(
    con: duckdb.DuckDBPyConnection,
    catalog: Catalog,
    name: str,
    rebuild: bool,
    base: dict[str, int | None],
    scoped: bool = False,
) -> None:
    """Commit the merged rows: only the changed keys' rows when it can, else the whole table. `scoped`: the
    table was merged by its changed keys (scope.py: `staged_<name>` holds just their rows, `keys_<name>`
    names them). The step `publish_<name>` (relations.py): its inputs checked before, its scratch gone after."""
    with checked_step(con, f"publish_{name}"):
        if _nothing_to_create(con, catalog, name, base):
            return
        source = f"staged_{name}"
        if scoped:
            if catalog.snapshot_id(name) == base[name]:
                _publish_scoped(con, catalog, name)
                return
            source = f"new_{name}"  # redoing an interrupted publish that committed this table already: whole
        else:
            try:
                if _publish_changes(con, catalog, name, rebuild, base):
                    return
            finally:
                _drop_changed(con, name)
        if _publish_as_twin(con, catalog, name, source):
            return
        # Streamed from DuckDB in slices, one file each, sorted so that each file holds a narrow range
        # of the table's cluster column: the published rows are never all in Python's memory at once.
        order = sort_order(name)
        if order and _in_order(con, name, source, order):
            with insertion_order(con):  # as they lie: in order already (1M listen events: ~0.6 CPU s less)
                catalog.overwrite(name, con.sql(f"SELECT * FROM {source}").to_arrow_reader(PUBLISH_ROWS))
            return
        ordered = con.sql(f"SELECT * FROM {source}" + (f" ORDER BY {order}" if order else ""))
        catalog.overwrite(name, ordered.to_arrow_reader(PUBLISH_ROWS))


# Tables whose staged rows are often built in their sort order already: `listen_events` of a first import
# (or a rebuild) is the download's plays in file order (history/listens.py `build_listen_events`), which is
# time order in Spotify's files. Checking costs ~0.2 CPU s per 1M rows; sorting them ~0.8-1.1.
BUILT_IN_ORDER = frozenset({"listen_events"})


def _in_order(con: duckdb.DuckDBPyConnection, name: str, source: str, order: str) -> bool:
    """Whether `source` is a temp table whose rows, in the order they were inserted, are already in `order`
    (each row's sort key >= the one before it; ties broken as ORDER BY would, NULLs last)."""
    if name not in BUILT_IN_ORDER:
        return False
    is_table = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [source]).fetchall()
    if is_table != [(1,)]:
        return False
    columns = [c.strip() for c in order.split(",")]
    if len(columns) == 1:
        return _one_column_in_order(con, source, columns[0])
    keys = ", ".join(f"{c}, lag({c}) OVER w AS before_{n}" for n, c in enumerate(columns))
    earlier = " OR ".join(
        "(" + " AND ".join([*(f"before_{m} = {columns[m]}" for m in range(n)), f"before_{n} > {columns[n]}"]) + ")"
        for n in range(len(columns))
    )
    nulls = " OR ".join(f"{c} IS NULL" for c in columns)  # NULLs sort last: rather than reason about them, sort
    out_of_order = con.execute(
        f"SELECT count(*) FROM (SELECT {keys} FROM {source} WINDOW w AS (ORDER BY rowid)) WHERE {earlier} OR {nulls}"
    ).fetchall()[0][0]
    return not out_of_order


def _one_column_in_order(con: duckdb.DuckDBPyConnection, source: str, column: str) -> bool:
    """`_in_order` of a one-column order: the column read as it lies (the scan publishing would stream, in
    insertion order) and each value compared with the one before it in Arrow. The window over `rowid` the
    general case uses sorts every row by it first: ~0.2 CPU s per 1M rows; this ~0.02."""
    with insertion_order(con):
        values = con.sql(f"SELECT {column} FROM {source}").to_arrow_table().column(0).combine_chunks()
    if values.null_count:  # NULLs sort last: rather than reason about them, sort
        return False
    return len(values) < 2 or not pc.any(pc.less(values[1:], values[:-1])).as_py()


def ensure_space(catalog: Catalog, staged_rows: dict[str, int]) -> None:
    """Refuse to start publishing when the staged rows clearly cannot fit (a full disk mid-publish would
    leave some tables new and some old until the next run re-applies the same raw runs). The estimate,
    16 bytes per value, is above what the compressed Parquet files take (about 2-4 bytes per value)."""
    needed = sum(rows * len(TABLES[name].schema) * 16 for name, rows in staged_rows.items()) + 256 * 1024
    free = catalog.free_bytes()
    if free < needed:
        raise LakeError(
            f"not enough free space in {catalog.location} to publish ({free // 1024} KiB free, about "
            f"{needed // 1024} KiB needed)",
            hint="the disk is full: free space and re-run; nothing was published and the raw zone is intact",
        )


def record_rejected(
    catalog: Catalog,
    rejected: list[Rejected],
    manifests: list[dict[str, Any]],
    rebuild: bool,
    by_run_id: str,
    now: dt.datetime,
) -> int:
    """Replace the `rejected_records` of the raw runs just read by what this transform set aside (a rebuild:
    the whole table), so re-reading a run never duplicates its rows and a record that now reads is gone.
    Written first in the publish (under its journal, so readers see it with the tables): a publish that
    fails or is redone re-reads the same runs and converges.
    Returns the table's rows afterwards."""
    name = "rejected_records"
    exists = name in catalog.table_names()
    old = catalog.read(name) if exists and not rebuild else TABLES[name].schema.empty_table()
    runs = {m["run_id"] for m in manifests}
    run_of = {entry["key"]: m["run_id"] for m in manifests for entry in m["files"]}
    kept = old.filter(pc.invert(pc.is_in(old.column("raw_run_id"), pa.array(sorted(runs), pa.string()))))
    new = pa.Table.from_pylist(
        [
            {
                "raw_run_id": run_of.get(r.raw_key, r.run_id),
                "raw_file": r.raw_key,
                "line_number": r.line_number,
                "entity": r.entity,
                "playlist_id": r.playlist_id,
                "user_id": r.user_id,
                "field": r.field,
                "error": r.error,
                "rejected_at": now,
                "by_run_id": by_run_id,
            }
            for r in rejected
        ],
        schema=TABLES[name].schema,
    )
    if new.num_rows or kept.num_rows != old.num_rows or (rebuild and exists):
        catalog.overwrite(name, pa.concat_tables([kept, new]))
    return int(kept.num_rows + new.num_rows)


def record_gaps(catalog: Catalog, manifests: list[dict[str, Any]], rebuild: bool) -> None:
    """`listening_gaps` from the manifests' recently-played gaps, so the raw zone alone rebuilds it (a rebuild
    replaces the table). A run whose gaps are already there is skipped: a publish redone after a crash
    never records a gap twice."""
    name = "listening_gaps"
    exists = name in catalog.table_names()
    done = set() if rebuild or not exists else set(catalog.read(name).column("run_id").to_pylist())
    times = ("from_played_at", "to_played_at", "detected_at")
    rows = [
        {**gap, **{k: dt.datetime.fromisoformat(gap[k]) for k in times}, "run_id": m["run_id"]}
        for m in manifests
        if m["run_id"] not in done
        for gap in m.get("gaps") or ()
    ]
    table = pa.Table.from_pylist(rows, schema=TABLES[name].schema)
    if rebuild and exists:
        catalog.overwrite(name, table)
    else:
        catalog.append(name, table)
