"""A keyed replace by merge-on-read: the replaced rows are marked deleted by position, not rewritten.

`Catalog.replace_rows` (catalog.py) replaces every row whose key column holds one of a run's changed keys.
Copy-on-write rewrites each data file that holds one, whole: a changed playlist's ~100 songs lie in every
file of `songs`, so a run rewrote most of the lake (docs/BENCHMARKS.md). Here, in one commit:

1. pyiceberg's scan planning lists the data files whose statistics may hold a key (an `In` filter);
2. DuckDB reads their key column (with each row's position, minus rows already deleted) once, to find the
   rows that do; a file's live rows are its record count less the positions delete files mark in it;
3. per file: none -> untouched; all -> the file is dropped; more than `REWRITE_SHARE` of its rows -> it is
   rewritten without them (copy-on-write: a file mostly deleted would cost every reader more than it saves
   the writer); else its positions go into the commit's ONE position delete file (deletes.py);
4. the new rows (and rewritten files' surviving rows) are appended as data files.

`maintain` (maintenance.py) later rewrites the files that have deletes and drops the delete files.
Inside `sharing(con)` (the transform's publish) each replace queries through a cursor of `con` instead of
opening a DuckDB database of its own (~40-100 ms each, for 8-10 replaces of a small run).
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from . import counts
from .contract import TABLES
from .deletes import row_delta, write_position_deletes
from .files import FILE_COLUMN, POS_COLUMN, files_of_tasks, sql_paths

log = logging.getLogger(__name__)

# A file with more than this share of its live rows replaced is rewritten rather than given deletes
# (docs/BENCHMARKS.md, "Merge-on-read").
REWRITE_SHARE = 1 / 3
IN_PRUNING_LIMIT = 200  # pyiceberg.expressions.visitors.IN_PREDICATE_LIMIT in 0.12

# The DuckDB connection whose cursors the replaces use (`sharing`); None: each opens its own.
_SHARED: contextvars.ContextVar[Any] = contextvars.ContextVar("replace_connection", default=None)


@contextlib.contextmanager
def sharing(con: Any) -> Iterator[None]:
    """Run the replaces inside on cursors of `con` (same database, settings and S3 filesystem; temp views
    of their own, gone when the cursor closes), not on a new database each."""
    token = _SHARED.set(con)
    try:
        yield
    finally:
        _SHARED.reset(token)


def _connection(remote: bool) -> Any:
    from ..transform.connection import connect

    shared = _SHARED.get()
    return connect(remote=remote) if shared is None else shared.cursor()


def replace_by_deletes(
    catalog: Any,
    table: Any,
    name: str,
    column: str,
    keys: list[Any],
    slices: Iterable[pa.Table],
    key_rows: pa.Table | None = None,
    within: Any = None,
) -> None:
    """Replace the rows whose `column` is one of `keys` (non-empty; ISO text for dates and timestamps, as
    pyiceberg takes them) by `slices`, in one snapshot, writing position deletes (module docstring).
    With `key_rows` (columns of the table, no NULLs), only the rows whose values of those columns are one
    of its rows are replaced: `keys` then only narrow the files searched (e.g. a day of `song_popularity`,
    of which a run replaces the songs it saw). `within`: a pyiceberg filter every key matches (their range,
    catalog.py `key_range`), which prunes files by statistics however many keys there are."""
    from pyiceberg.expressions import AlwaysTrue, And, In
    from pyiceberg.io.pyarrow import _dataframe_to_data_files

    member: Any = In  # typed as its pydantic fields in pyiceberg 0.12, called as In(term, literals)
    # pyiceberg 0.12 prunes files by statistics for an IN list of at most 200 values and reads every file's
    # otherwise; building the filter for thousands of keys alone took 0.75 s of a 1M run (profiled).
    planned = member(column, keys) if len(keys) <= IN_PRUNING_LIMIT else AlwaysTrue()
    if within is not None:
        planned = And(planned, within)
    tasks = list(table.scan(row_filter=planned).plan_files())
    log.debug("table %s: searched %d of %d data files for %d keys", name, len(tasks), _data_files(table), len(keys))
    schema = TABLES[name].schema
    if key_rows is None:
        key_rows = pa.table({column: pa.array(sorted({str(k) for k in keys}), pa.string())})
    key_values = key_rows.cast(pa.schema([schema.field(c) for c in key_rows.column_names]))
    match = " AND ".join(f'r."{c}" = k."{c}"' for c in key_rows.column_names)
    drop: list[Any] = []
    rewrite: list[Any] = []
    positions = pa.table({"file_path": pa.array([], pa.string()), "pos": pa.array([], pa.int64())})
    parent = table.current_snapshot()
    live = counts.live_records(catalog, name, parent)  # the rows it reads: this commit records its own (counts.py)
    with contextlib.closing(_connection(catalog.remote)) as con:
        if tasks:
            files = files_of_tasks(name, tasks, catalog.owns)
            con.register("_keys", key_values)
            # One scan: the replaced rows' file and position. A file's live rows come from its metadata (its
            # records less the positions deleted in it), not from counting every row of every file again.
            positions = con.sql(
                f"SELECT {FILE_COLUMN} AS file_path, {POS_COLUMN} AS pos FROM ({files.sql(positions=True)}) r "
                f"SEMI JOIN _keys k ON {match}"
            ).to_arrow_table()
            hits = Counter(positions.column("file_path").to_pylist())
            deleted = _deleted_in(con, files.deletes, list(hits))
            by_path = {task.file.file_path: task for task in tasks}
            marked: list[str] = []
            for path, hit in hits.items():
                in_file = by_path[path].file.record_count - deleted.get(path, 0)
                if hit == in_file:
                    drop.append(by_path[path])
                elif hit > in_file * REWRITE_SHARE:
                    rewrite.append(by_path[path])
                else:
                    marked.append(path)
                    continue
                live -= in_file  # a file dropped or rewritten: its survivors come back appended
            paths = positions.column("file_path")
            positions = positions.filter(pc.is_in(paths, value_set=pa.array(marked, paths.type)))
        with transaction(table) as tx, row_delta(tx) as delta:
            metadata = tx.table_metadata
            counter = itertools.count()
            for task in drop + rewrite:
                delta.delete_data_file(task.file)
            if positions.num_rows:
                delta.append_data_file(write_position_deletes(table, positions, delta.commit_uuid))
            live -= positions.num_rows  # each a live row (the search skips rows already deleted)
            survivors = _survivors(con, name, catalog.owns, rewrite, match, schema)
            for rows in itertools.chain(survivors, slices):
                live += rows.num_rows
                if rows.num_rows:
                    for data_file in _dataframe_to_data_files(
                        table_metadata=metadata, df=rows, io=table.io, write_uuid=delta.commit_uuid, counter=counter
                    ):
                        delta.append_data_file(data_file)
            delta.snapshot_properties = counts.summary_properties(live)
    log.debug(
        "table %s: %d positions deleted, %d files dropped, %d rewritten",
        name,
        positions.num_rows,
        len(drop),
        len(rewrite),
    )


def _deleted_in(con: Any, delete_paths: list[str], paths: list[str]) -> dict[str, int]:
    """Rows already deleted in each data file of `paths` (as the metadata records them), by the delete files
    `delete_paths`: a position marked twice counts once. DuckDB reads only the positions of those files
    (pyarrow read every position of every delete file: 146k of `playlist_songs` after a week of runs, for
    the one or two files a changed playlist hits)."""
    if not delete_paths or not paths:
        return {}
    con.register("_hit_files", pa.table({"file_path": pa.array(paths, pa.string())}))
    rows = con.sql(
        f"SELECT x.file_path, count(DISTINCT x.pos) FROM read_parquet({sql_paths(delete_paths)}) x "
        "WHERE x.file_path IN (SELECT file_path FROM _hit_files) GROUP BY x.file_path"
    ).fetchall()
    return {str(path): int(n) for path, n in rows}


def _data_files(table: Any) -> int:
    """How many data files the table's current snapshot has (its summary; for the log)."""
    snapshot = table.current_snapshot()
    summary = snapshot.summary if snapshot is not None else None
    return int(summary["total-data-files"]) if summary is not None and "total-data-files" in summary else -1


def transaction(table: Any) -> Any:
    """`table.transaction()`, whose `table_metadata` is built once per staged update. pyiceberg 0.12 re-applies
    every staged update to a deep copy of the table metadata (every kept snapshot) at each read of it, and a
    commit reads it ~20 times: 214 deep copies for a small run's 10 commits, growing with the history a
    table keeps. The metadata is a frozen model and the transaction only ever replaces it, so one copy per
    state is enough. (pyiceberg internals: `Transaction._table`, `_updates`; re-check on upgrade.)"""
    from pyiceberg.table import Transaction

    class MetadataOnce(Transaction):
        _built: tuple[Any, Any, Any] | None = None  # (base metadata, staged updates, metadata built from them)

        @property
        def table_metadata(self) -> Any:
            built = self._built
            if built is None or built[0] is not self._table.metadata or built[1] is not self._updates:
                built = (self._table.metadata, self._updates, super().table_metadata)
                self._built = built
            return built[2]

    return MetadataOnce(table)


def _survivors(
    con: Any, name: str, owns: Callable[[str], bool], rewrite: list[Any], match: str, schema: pa.Schema
) -> Iterable[pa.Table]:
    """The rows of the files to rewrite that are neither deleted nor replaced, file by file in their order
    (each file read alone)."""
    for task in rewrite:
        one = files_of_tasks(name, [task], owns)
        rows = con.sql(  # one data file's rows: at most `publish.PUBLISH_ROWS`
            f"SELECT * EXCLUDE ({FILE_COLUMN}, {POS_COLUMN}) FROM ({one.sql(positions=True)}) r "
            f"ANTI JOIN _keys k ON {match} ORDER BY {POS_COLUMN}"
        ).to_arrow_table()
        yield rows.cast(schema)
