"""How rows become an Iceberg table's data files: slices encoded to Parquet two at a time and committed as one
snapshot, and the key range that lets a filtered delete skip every file outside it (catalog.py's writes)."""

from __future__ import annotations

import collections
import datetime as dt
import itertools
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pyarrow as pa


def key_range(column: str, kind: pa.DataType, keys: list[Any]) -> Any:
    """`min(keys) <= column <= max(keys)` as a pyiceberg filter (None: no keys, or a type not ordered here).
    Keys come as pyiceberg literals (publish.py `_literal`: ISO text for dates and timestamps, text for
    numbers), so they are compared as the values they stand for: "10" < "9" as text, not as numbers."""
    from pyiceberg.expressions import And, GreaterThanOrEqual, LessThanOrEqual

    order: Any
    if pa.types.is_timestamp(kind):
        order = dt.datetime.fromisoformat
    elif pa.types.is_date(kind):
        order = dt.date.fromisoformat
    elif pa.types.is_integer(kind):
        order = int
    elif pa.types.is_string(kind):
        order = str
    else:
        return None
    if not keys:
        return None
    lowest, highest = min(keys, key=order), max(keys, key=order)
    above: Any = GreaterThanOrEqual  # typed as their pydantic fields in pyiceberg 0.12, like `In`
    below: Any = LessThanOrEqual
    return And(above(column, lowest), below(column, highest))


def replace_in_slices(table: Any, slices: Iterable[pa.Table], delete_filter: Any = None) -> None:
    """One delete and one append snapshot, however many slices. `Transaction.append` per slice would make
    a snapshot per slice, and pyiceberg re-applies every staged update (a deep copy of the table metadata,
    which holds every kept snapshot) each time the transaction's metadata is read: that grew with the
    table's history and was 13% of a 1M rebuild on a lake with ~250 snapshots per table. Passing a
    `RecordBatchReader` to `Transaction.overwrite` is not an option: in pyiceberg 0.12 its writer submits
    every file to a thread pool up front, which holds the whole table in memory.
    `_dataframe_to_data_files` is what `Transaction.append` calls for each table (pyiceberg 0.12).
    With `delete_filter`, only the matching rows are deleted: pyiceberg drops the data files whose rows all
    match, and rewrites those holding some without them (copy-on-write, no delete files)."""
    from pyiceberg.expressions import AlwaysTrue
    from pyiceberg.io.pyarrow import _dataframe_to_data_files

    with table.transaction() as tx:
        tx.delete(AlwaysTrue() if delete_filter is None else delete_filter)
        metadata = tx.table_metadata  # fixed from here to the commit: read (and copied) once
        with tx.update_snapshot().fast_append() as append:
            counter = itertools.count()

            def write(rows: pa.Table) -> list[Any]:
                return list(
                    _dataframe_to_data_files(
                        table_metadata=metadata, df=rows, io=table.io, write_uuid=append.commit_uuid, counter=counter
                    )
                )

            for data_file in _in_parallel(write, (rows for rows in slices if rows.num_rows)):
                append.append_data_file(data_file)


def overwrite_with_copies(table: Any, source: Any, rows: int) -> bool:
    """Overwrite `table` in one snapshot with copies of the data files of `source`'s current snapshot, for a
    table whose rows are known to be exactly `source`'s (publish.py `TWINS`): the files' bytes are copied,
    never encoded again (publishing 1M `listens` rows: ~2.3 CPU s of sorting and Parquet encoding). Each
    table keeps files of its own, in its own data folder, so expiring or compacting one never touches the
    other's. Each data file's entry is re-added as read from `source`'s manifest, its path changed (its
    statistics stay true of the copy), as pyiceberg re-adds existing files. False, having written nothing,
    where a copy would not be the `rows` rows the caller expects: another schema (field IDs) or partition
    spec, delete files in `source` (rows marked deleted are still in its data files), another count."""
    import uuid

    from pyiceberg.expressions import AlwaysTrue
    from pyiceberg.manifest import DATA_FILE_TYPE, DEFAULT_READ_VERSION, ManifestContent

    snapshot = source.current_snapshot()
    if (
        snapshot is None
        or source.schema() != table.schema()
        or source.spec() != table.spec()
        or source.spec().fields  # unpartitioned only: a partition value is part of each data file's entry
    ):
        return False
    manifests = snapshot.manifests(source.io)
    if any(m.content != ManifestContent.DATA for m in manifests):
        return False
    originals = [entry.data_file for m in manifests for entry in m.fetch_manifest_entry(source.io)]
    if sum(int(f.record_count) for f in originals) != rows:
        return False
    path_at = [f.name for f in DATA_FILE_TYPE[DEFAULT_READ_VERSION].fields].index("file_path")
    locations = table.location_provider()
    batch = uuid.uuid4()
    copies = []
    for number, original in enumerate(originals):
        path = locations.new_data_location(f"{number:05d}-copy-{batch}.parquet")
        with source.io.new_input(original.file_path).open() as src, table.io.new_output(path).create() as out:
            out.write(src.read())
        copy = type(original)(*(original[i] for i in range(len(original))))
        copy[path_at] = path
        copies.append(copy)
    with table.transaction() as tx:
        tx.delete(AlwaysTrue())
        with tx.update_snapshot().fast_append() as append:
            for copy in copies:
                append.append_data_file(copy)
    return True


# Slices encoded at once: Parquet encoding releases the GIL, so while one slice is encoded the next is
# encoded on the other core and DuckDB computes the one after (publishing 1M listens: ~1.3 s of encoding
# per table on one core otherwise). Each slice in flight is one `PUBLISH_ROWS` Arrow table in memory.
WRITE_THREADS = 2


def _in_parallel(write: Callable[[pa.Table], list[Any]], slices: Iterable[pa.Table]) -> Iterator[Any]:
    """`write(slice)` for each slice, `WRITE_THREADS` at a time, their results in the slices' order; at most
    `WRITE_THREADS + 1` slices are held besides the one being read. The first failure is raised (the files
    already written are never committed)."""
    with ThreadPoolExecutor(WRITE_THREADS) as pool:
        pending: collections.deque[Future[list[Any]]] = collections.deque()
        try:
            for rows in slices:
                pending.append(pool.submit(write, rows))
                if len(pending) > WRITE_THREADS:
                    yield from pending.popleft().result()
            while pending:
                yield from pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
