"""A table's DuckDB view (files.py `TableFiles.sql`) on real Iceberg tables with position deletes: it holds
exactly the rows of pyiceberg's own `scan().to_arrow()` however the deletes fall (many files, some with
deletes and some without, a file whose every row is deleted, delete files naming files no longer in the
snapshot, earlier snapshots), and reads every data file in one Parquet scan."""

from __future__ import annotations

import uuid
from pathlib import Path

import pyarrow as pa
import pytest

from spotify_pipeline.tables.catalog import Catalog
from spotify_pipeline.tables.deletes import row_delta, write_position_deletes
from spotify_pipeline.tables.replace import transaction
from spotify_pipeline.transform.connection import connect, register_table

from .test_deletes import TABLE, duckdb_rows, iceberg_rows, runs

FILES = 12
ROWS = 20  # per file


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    """A table of 12 files of 20 rows each (keys r000-r239, in key order)."""
    catalog = Catalog(tmp_path / "lake's files")  # a quote and a space in every path
    ids = [f"r{i:03d}" for i in range(FILES * ROWS)]
    batches = (b for s in range(0, len(ids), ROWS) for b in runs(ids[s : s + ROWS]).to_batches())
    catalog.overwrite(TABLE, batches)
    assert len(catalog.data_files(TABLE)) == FILES
    return catalog


def replace(catalog: Catalog, keys: list[str], by: str) -> None:
    catalog.replace_rows(TABLE, "raw_run_id", keys, runs(keys, by=by).to_batches())


def mark_deleted(catalog: Catalog, positions: dict[str, list[int]]) -> None:
    """Commit one position delete file marking `positions` (data file as recorded -> rows), as a writer
    other than ours could (a file may lose every row to deletes without being dropped)."""
    table = catalog.table(TABLE)
    rows = pa.table(
        {
            "file_path": [path for path, rows in positions.items() for _ in rows],
            "pos": [pos for rows in positions.values() for pos in rows],
        }
    )
    with transaction(table) as tx, row_delta(tx) as delta:
        delta.append_data_file(write_position_deletes(table, rows, uuid.uuid4()))


def test_many_files_some_with_deletes_read_as_pyiceberg_does(catalog: Catalog) -> None:
    rounds = [
        ["r001", "r002", "r045"],  # two files marked, ten plain
        ["r001", "r100", "r101", "r239"],  # a key replaced twice; its new row is in a file of its own
        [f"r{i:03d}" for i in range(120, 126)],  # under the rewrite share of one file
    ]
    for number, keys in enumerate(rounds):
        replace(catalog, keys, by=f"round{number}")
        files = catalog.files(TABLE)
        assert files.marked and set(files.data) - files.marked  # both kinds in one view
        assert duckdb_rows(catalog) == iceberg_rows(catalog)
    rows = duckdb_rows(catalog)
    assert len(rows) == FILES * ROWS
    assert dict((r[0], r[2]) for r in rows)["r001"] == "round1"
    # Projections, filters and aggregates over the view see the same rows.
    con = connect()
    register_table(con, catalog, TABLE, "t")
    expected = iceberg_rows(catalog)
    assert con.execute("SELECT count(*), count(DISTINCT raw_run_id) FROM t").fetchall() == [(240, 240)]
    assert sorted(con.execute("SELECT raw_run_id FROM t WHERE by_run_id = 'round2'").fetchall()) == [
        (r[0],) for r in expected if r[2] == "round2"
    ]
    assert con.execute("SELECT count(*) FROM t WHERE by_run_id = 'first'").fetchall() == [
        (sum(r[2] == "first" for r in expected),)
    ]


def test_a_file_whose_every_row_is_deleted_reads_as_empty(catalog: Catalog) -> None:
    files = catalog.files(TABLE)
    emptied, partly = files.recorded[3], files.recorded[7]
    mark_deleted(catalog, {emptied: list(range(ROWS)), partly: [0, ROWS - 1]})
    assert len(catalog.files(TABLE).data) == FILES  # still listed: its deletes hide every row
    rows = duckdb_rows(catalog)
    assert rows == iceberg_rows(catalog)
    assert len(rows) == FILES * ROWS - ROWS - 2


def test_deletes_naming_files_or_rows_outside_the_snapshot_change_nothing(catalog: Catalog) -> None:
    files = catalog.files(TABLE)
    gone = files.recorded[0].replace(".parquet", "-never-written.parquet")
    # Positions past a file's last row name no row (not the next file's first rows).
    mark_deleted(catalog, {gone: [0, 1, 2], files.recorded[5]: [4, ROWS, ROWS + 1, 2 * ROWS + 3]})
    rows = duckdb_rows(catalog)
    assert rows == iceberg_rows(catalog)
    assert len(rows) == FILES * ROWS - 1


def test_every_earlier_snapshot_reads_as_pyiceberg_reads_it(catalog: Catalog) -> None:
    snapshots = [catalog.snapshot_id(TABLE)]
    for number, keys in enumerate((["r010", "r011"], ["r010", "r200"], [f"r{i:03d}" for i in range(20, 40)])):
        replace(catalog, keys, by=f"round{number}")
        snapshots.append(catalog.snapshot_id(TABLE))
    mark_deleted(catalog, {catalog.files(TABLE).recorded[-1]: [0]})
    snapshots.append(catalog.snapshot_id(TABLE))
    seen = set()
    for snapshot in snapshots:
        rows = duckdb_rows(catalog, snapshot)
        assert rows == iceberg_rows(catalog, snapshot)
        seen.add(tuple(rows))
    assert len(seen) == len(snapshots)  # each snapshot's rows differ from the others'


def test_the_data_files_are_read_in_one_scan_and_filtered_by_integer_positions(catalog: Catalog) -> None:
    """The plan that pays (docs/BENCHMARKS.md, "Reads after a week of runs"): one scan, integer keys, and the
    hash table built on the deleted positions (a mark join), never on the data files' rows."""
    replace(catalog, ["r001", "r050"], by="second")
    files = catalog.files(TABLE)
    assert files.marked and set(files.data) - files.marked and files.deletes
    con = connect()
    con.execute(f"CREATE VIEW t AS {files.sql()}")
    plan = "\n".join(str(row[1]) for row in con.execute("EXPLAIN SELECT raw_run_id FROM t").fetchall())
    # Two Parquet scans: every data file in one, the delete files in the other (not one per kind of file).
    assert plan.count("READ_PARQUET") == 2, plan
    # Rows are matched to their deleted positions by file number and row number, not by a file-name string.
    assert "filename" not in plan and "_read_path" not in plan, plan
    assert "file_index" in plan and "file_row_number" in plan, plan
    assert "MARK" in plan and "ANTI" not in plan, plan


def test_no_table_has_a_column_named_like_duckdbs_virtual_columns() -> None:
    """A real column named `file_index` or `file_row_number` would hide DuckDB's virtual one of that name, and
    the view would match deleted positions against the column's values."""
    from spotify_pipeline.tables.contract import TABLES

    virtual = {"file_index", "file_row_number", "filename"}
    assert not [(name, c) for name, table in TABLES.items() for c in table.schema.names if c in virtual]
