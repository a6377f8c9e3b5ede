"""Merge-on-read replaces (replace.py, deletes.py, files.py) on real Iceberg tables in tmp_path: the replaced
rows become position delete files, and our DuckDB view of a table with deletes holds exactly the rows
pyiceberg's own scan does (the spec check)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spotify_pipeline.tables import replace
from spotify_pipeline.tables.catalog import Catalog
from spotify_pipeline.tables.contract import TABLES
from spotify_pipeline.tables.deletes import FILE_PATH_ID, POS_ID
from spotify_pipeline.transform.connection import connect, register_table

TABLE = "processed_raw_runs"  # raw_run_id (the key), processed_at, by_run_id
WHEN = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def runs(ids: list[str], by: str = "first") -> pa.Table:
    rows = [{"raw_run_id": i, "processed_at": WHEN, "by_run_id": by} for i in ids]
    return pa.Table.from_pylist(rows, schema=TABLES[TABLE].schema)


def duckdb_rows(catalog: Catalog, snapshot_id: int | None = None) -> list[tuple[object, ...]]:
    con = connect()
    register_table(con, catalog, TABLE, "t", snapshot_id)
    return sorted(con.execute("SELECT raw_run_id, processed_at, by_run_id FROM t").fetchall())


def iceberg_rows(catalog: Catalog, snapshot_id: int | None = None) -> list[tuple[object, ...]]:
    table = catalog.table(TABLE).scan(snapshot_id=snapshot_id).to_arrow()
    return sorted(tuple(r.values()) for r in table.to_pylist())


def delete_files(catalog: Catalog) -> list[str]:
    return catalog.files(TABLE).deletes


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    """A table of 3 files of 30 rows each (keys r000-r089), sorted by key."""
    catalog = Catalog(tmp_path / "my lake")  # a space in the path: file:// URIs vs local paths
    ids = [f"r{i:03d}" for i in range(90)]
    catalog.overwrite(TABLE, (b for s in range(0, 90, 30) for b in runs(ids[s : s + 30]).to_batches()))
    assert len(catalog.data_files(TABLE)) == 3
    return catalog


def test_a_keyed_replace_writes_one_delete_file_and_readers_agree_with_pyiceberg(catalog: Catalog) -> None:
    before = catalog.snapshot_id(TABLE)
    changed = ["r001", "r031", "r032", "r089"]  # a few rows of every file
    catalog.replace_rows(TABLE, "raw_run_id", changed, runs(changed, by="second").to_batches())
    files = catalog.files(TABLE)
    assert len(files.deletes) == 1
    assert len(files.data) == 4  # the 3 files untouched, plus the new rows
    # The delete file follows the spec: field ids, sorted by file_path then pos, paths as the metadata records them.
    deletes = pq.read_table(files.deletes[0])
    schema = pq.read_schema(files.deletes[0])
    assert [f.metadata[b"PARQUET:field_id"] for f in schema] == [str(FILE_PATH_ID).encode(), str(POS_ID).encode()]
    pairs = list(zip(deletes.column("file_path").to_pylist(), deletes.column("pos").to_pylist(), strict=True))
    assert pairs == sorted(pairs) and len(pairs) == 4
    assert {p for p, _ in pairs} <= set(files.recorded) and all(p.startswith("file://") for p, _ in pairs)
    # What pyiceberg's own scan sees is what our DuckDB view sees: each changed key once, with its new row.
    ours = duckdb_rows(catalog)
    assert ours == iceberg_rows(catalog)
    assert len(ours) == 90
    assert sorted(r[0] for r in ours if r[2] == "second") == changed
    # The snapshot before the replace still reads as it was (time travel).
    assert duckdb_rows(catalog, before) == iceberg_rows(catalog, before)
    assert all(r[2] == "first" for r in duckdb_rows(catalog, before))


def test_replaces_accumulate_deletes_and_a_rewrite_past_the_share(catalog: Catalog) -> None:
    originals = catalog.data_files(TABLE)
    for round_, changed in enumerate((["r005", "r040"], ["r005", "r006", "r070"], ["r040", "r041"])):
        catalog.replace_rows(TABLE, "raw_run_id", changed, runs(changed, by=f"round{round_}").to_batches())
        assert duckdb_rows(catalog) == iceberg_rows(catalog)
    assert len(delete_files(catalog)) == 3
    latest = dict((r[0], r[2]) for r in duckdb_rows(catalog))
    assert latest["r005"] == "round1" and latest["r040"] == "round2" and latest["r070"] == "round1"
    assert len(latest) == 90
    # Most of the first file replaced: it is rewritten (no positions), its other rows kept.
    first = [f"r{i:03d}" for i in range(0, 25)]
    catalog.replace_rows(TABLE, "raw_run_id", first, runs(first, by="bulk").to_batches())
    assert duckdb_rows(catalog) == iceberg_rows(catalog)
    assert len(set(originals) & set(catalog.data_files(TABLE))) == 2  # the first file is gone
    rows = duckdb_rows(catalog)
    assert len(rows) == 90 and sum(r[2] == "bulk" for r in rows) == 25


def test_the_rows_a_file_already_lost_count_in_the_share(catalog: Catalog) -> None:
    """7 rows replaced are a third of a file's 18 live rows, not of its 30 records: it is rewritten."""
    first = min(catalog.data_files(TABLE), key=lambda p: pq.read_table(p).column("raw_run_id").to_pylist()[0])
    for keys in (["r000", "r001", "r002", "r003", "r004", "r005"], ["r006", "r007", "r008", "r009", "r010", "r011"]):
        catalog.replace_rows(TABLE, "raw_run_id", keys, runs(keys, by="marked").to_batches())
        assert first in catalog.data_files(TABLE), "a fifth and a quarter of its live rows: marked"
    more = [f"r{i:03d}" for i in range(12, 19)]
    catalog.replace_rows(TABLE, "raw_run_id", more, runs(more, by="rewritten").to_batches())
    assert first not in catalog.data_files(TABLE)
    assert duckdb_rows(catalog) == iceberg_rows(catalog) and len(duckdb_rows(catalog)) == 90


def test_a_whole_file_replaced_is_dropped_not_marked(catalog: Catalog) -> None:
    ids = [f"r{i:03d}" for i in range(30, 60)]
    catalog.replace_rows(TABLE, "raw_run_id", ids, runs(ids, by="again").to_batches())
    assert delete_files(catalog) == []
    assert len(catalog.data_files(TABLE)) == 3
    assert duckdb_rows(catalog) == iceberg_rows(catalog)


def test_the_share_decides_between_deletes_and_rewrites(catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(replace, "REWRITE_SHARE", 0.0)  # every touched file rewritten: copy-on-write
    catalog.replace_rows(TABLE, "raw_run_id", ["r001"], runs(["r001"], by="cow").to_batches())
    assert delete_files(catalog) == []
    assert duckdb_rows(catalog) == iceberg_rows(catalog)
    assert len(duckdb_rows(catalog)) == 90


def test_a_replace_of_more_keys_than_pyiceberg_prunes_by(catalog: Catalog) -> None:
    present = [f"r{i:03d}" for i in range(0, 90, 3)]  # a third of every file: marked, not rewritten
    keys = present + [f"absent{i}" for i in range(replace.IN_PRUNING_LIMIT)]
    catalog.replace_rows(TABLE, "raw_run_id", keys, runs(present, by="many").to_batches())
    assert len(delete_files(catalog)) == 1
    rows = duckdb_rows(catalog)
    assert rows == iceberg_rows(catalog) and len(rows) == 90
    assert sorted(r[0] for r in rows if r[2] == "many") == present


def test_deleted_positions_counts_each_position_once_and_only_in_live_files(tmp_path: Path) -> None:
    """The one count of deleted rows per data file (snapshots, replace and maintenance use it): a position
    marked by two delete files counts once, and with `live` a file no longer live is left out."""
    from pyiceberg.io.pyarrow import PyArrowFileIO

    from spotify_pipeline.tables.deletes import deleted_positions

    marks = {"one": [("file:///a.parquet", 0), ("file:///a.parquet", 3), ("file:///gone.parquet", 1)],
             "two": [("file:///a.parquet", 3), ("file:///b.parquet", 7)]}  # fmt: skip
    paths = []
    for name, rows in marks.items():
        paths.append(str(tmp_path / f"{name}-deletes.parquet"))
        pq.write_table(pa.table({"file_path": [f for f, _ in rows], "pos": [p for _, p in rows]}), paths[-1])
    io = PyArrowFileIO()
    assert deleted_positions(io, paths) == {"file:///a.parquet": 2, "file:///b.parquet": 1, "file:///gone.parquet": 1}
    live = ["file:///a.parquet", "file:///b.parquet", "file:///c.parquet"]
    assert deleted_positions(io, paths, live) == {"file:///a.parquet": 2, "file:///b.parquet": 1}
    assert deleted_positions(io, [], live) == {}
