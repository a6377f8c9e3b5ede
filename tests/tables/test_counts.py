"""Rows a snapshot reads, from its summary (tables/counts.py): every commit of ours that leaves rows marked
deleted records the live count in the snapshot's summary, so counting a table's rows (a transform's
`open.snapshots`) reads no delete file, however many a week of runs left; the count is exact where delete
files outlive data files they marked (dropped, rewritten, compacted), and a snapshot without it (written
before, or by a plain append) is counted from its files. Real Iceberg tables in tmp_path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from spotify_pipeline.lake import LocalStorage
from spotify_pipeline.tables import counts, deletes, maintenance, replace
from spotify_pipeline.tables.catalog import Catalog
from spotify_pipeline.tables.maintenance import MaintenanceResult, compact, maintain
from spotify_pipeline.transform.snapshots import table_row_counts

from .test_deletes import TABLE, iceberg_rows, runs


@pytest.fixture
def delete_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every delete file read (its path), by anyone, from here on."""
    read: list[str] = []
    real = deletes.read_positions

    def counting(io: Any, paths: Any) -> Any:
        paths = list(paths)
        read.extend(paths)
        return real(io, paths)

    monkeypatch.setattr(deletes, "read_positions", counting)
    return read


def replace_keys(catalog: Catalog, keys: list[str], by: str) -> None:
    catalog.replace_rows(TABLE, "raw_run_id", keys, runs(keys, by=by).to_batches())


def history(catalog: Catalog) -> list[tuple[int, int]]:
    """(snapshot, rows pyiceberg's scan reads) of every snapshot of the table."""
    table = catalog.table(TABLE)
    return [(s.snapshot_id, len(iceberg_rows(catalog, s.snapshot_id))) for s in table.metadata.snapshots]


def summary_counts(catalog: Catalog) -> dict[int, int | None]:
    table = catalog.table(TABLE)
    return {s.snapshot_id: counts.summary_live_records(s) for s in table.metadata.snapshots}


def test_replaces_record_the_live_rows_and_counting_reads_no_delete_file(
    catalog: Catalog, delete_reads: list[str]
) -> None:
    replace_keys(catalog, ["r001", "r031"], "a")  # marked in two files
    replace_keys(catalog, ["r002", "r033", "r061"], "b")  # marked in three
    # Every live row of the first file replaced: it is dropped, while the delete files marking it stay.
    replace_keys(catalog, [f"r{i:03d}" for i in range(30)], "c")
    replace_keys(catalog, [f"r{i:03d}" for i in range(40, 52)], "d")  # 12 of 28 live rows: rewritten
    replace_keys(catalog, ["r100", "r101"], "e")  # new keys only: nothing marked
    assert len(catalog.files(TABLE).deletes) >= 2, "delete files outlive the files they marked"
    table = catalog.table(TABLE)
    current = table.current_snapshot()
    assert int(current.summary["total-records"]) - int(current.summary["total-position-deletes"]) != len(
        iceberg_rows(catalog)
    ), "the summary's totals alone would be wrong here"

    delete_reads.clear()
    fresh = Catalog(catalog.root)
    assert table_row_counts(fresh, {TABLE: current.snapshot_id})[TABLE] == len(iceberg_rows(catalog)) == 92
    assert delete_reads == [], "counted from the summary"
    recorded = summary_counts(catalog)
    for snapshot_id, rows in history(catalog):  # every snapshot since the first replace records its rows
        assert recorded[snapshot_id] == rows


def test_compaction_records_the_live_rows(catalog: Catalog, delete_reads: list[str]) -> None:
    for start, end in ((0, 6), (6, 12), (12, 17)):  # 17 of 30 rows marked: past the deleted share
        replace_keys(catalog, [f"r{i:03d}" for i in range(start, end)], f"a{start}")
    for n in range(maintenance.MERGE_FILES_PAST + 1):  # one row each: many small files and delete files
        replace_keys(catalog, [f"r{31 + n:03d}"], f"run{n}")
    before, snapshot = len(iceberg_rows(catalog)), catalog.snapshot_id(TABLE)
    result = MaintenanceResult()
    compact(catalog, TABLE, result)
    assert result.files_compacted and catalog.snapshot_id(TABLE) != snapshot
    assert catalog.files(TABLE).deletes, "the second file keeps its deletes (under the share)"
    delete_reads.clear()
    assert table_row_counts(Catalog(catalog.root))[TABLE] == len(iceberg_rows(catalog)) == before
    assert delete_reads == []


def test_a_snapshot_without_the_count_is_counted_from_its_files_and_the_next_replace_records_it(
    catalog: Catalog, delete_reads: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as before:  # a lake written before the count was recorded
        before.setattr(counts, "summary_properties", lambda live: {})
        replace_keys(catalog, ["r001", "r031"], "a")
        replace_keys(catalog, [f"r{i:03d}" for i in range(30)], "b")
    assert counts.summary_live_records(catalog.table(TABLE).current_snapshot()) is None
    delete_reads.clear()
    assert table_row_counts(Catalog(catalog.root))[TABLE] == len(iceberg_rows(catalog)) == 90
    assert delete_reads, "counted from the delete files"

    replace_keys(catalog, ["r040", "r070"], "c")
    assert counts.summary_live_records(catalog.table(TABLE).current_snapshot()) == 90
    # An append records no count (pyiceberg's), and carries none over: counted from the files again.
    catalog.append(TABLE, runs(["r200"]))
    assert counts.summary_live_records(catalog.table(TABLE).current_snapshot()) is None
    assert table_row_counts(Catalog(catalog.root))[TABLE] == len(iceberg_rows(catalog)) == 91
    replace_keys(catalog, ["r041"], "d")
    assert counts.summary_live_records(catalog.table(TABLE).current_snapshot()) == 91


def test_maintain_keeps_the_count_exact(catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(replace, "REWRITE_SHARE", 1.0)  # marked, never rewritten by a replace
    for n in range(12):
        replace_keys(catalog, [f"r{n:03d}", f"r{30 + n:03d}", f"r{60 + 2 * n:03d}"], f"run{n}")
        maintain(LocalStorage(tmp_path), Catalog(tmp_path), keep_days=365)
        recorded = summary_counts(Catalog(tmp_path))
        for snapshot_id, rows in history(Catalog(tmp_path)):
            assert recorded[snapshot_id] in (rows, None)
        current = Catalog(tmp_path).table(TABLE).current_snapshot()
        assert counts.summary_live_records(current) == 90
