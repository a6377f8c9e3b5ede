"""`maintain` rewrites only what needs it (issue #20, "a lake within 1.5x its tables"): a data file once its
deleted share passes `COMPACT_DELETED_SHARE`, small files and delete files once there are many, the rest
left in place with their deletes; the manifests of a table's current snapshot merged (by runs, and by
`maintain`); the earlier metadata files bounded, also for tables made before the bound. Real Iceberg tables
in tmp_path."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from spotify_pipeline.lake import LocalStorage
from spotify_pipeline.tables import budget, deletes, maintenance
from spotify_pipeline.tables import catalog as catalog_module
from spotify_pipeline.tables.catalog import TABLE_PROPERTIES, Catalog
from spotify_pipeline.tables.maintenance import MaintenanceResult, compact, maintain, referenced_files

from ..conftest import kept_metadata_files
from .test_deletes import TABLE, duckdb_rows, iceberg_rows, runs


def replace(catalog: Catalog, keys: list[str], by: str) -> None:
    catalog.replace_rows(TABLE, "raw_run_id", keys, runs(keys, by=by).to_batches())


def in_key_order(paths: list[str]) -> list[str]:
    """The data files by the keys they hold (r000-r029 first). Not by name: slices are encoded on two threads
    (writes.py), so a file's number in its name is the order its encoding started, not its slice's."""
    return sorted(
        paths, key=lambda path: min(pq.read_table(path.removeprefix("file://")).column("raw_run_id").to_pylist())
    )


def test_only_files_past_the_deleted_share_are_rewritten(catalog: Catalog) -> None:
    first, second, third = in_key_order(catalog.data_files(TABLE))
    assert 2 / 30 < maintenance.COMPACT_DELETED_SHARE < 17 / 30  # what the cases below rely on
    # A replace rewrites a file when it replaces more than a third of its live rows, so mark them in three.
    replace(catalog, [f"r{i:03d}" for i in range(6)], "a")  # 6 of 30 rows
    replace(catalog, [f"r{i:03d}" for i in range(6, 12)], "b")  # 12 of 30
    replace(catalog, [f"r{i:03d}" for i in range(12, 17)], "c")  # 17 of 30: past the share
    replace(catalog, ["r031"], "d")  # 1 of 30: under the share
    replace(catalog, ["r032"], "e")  # 2 of 30 now: still under it
    files = catalog.files(TABLE)
    assert len(files.deletes) == 5 and len(files.data) == 8  # the 3 files, and 5 small files of new rows
    before = iceberg_rows(catalog)
    snapshot_before = catalog.snapshot_id(TABLE)

    result = MaintenanceResult()
    compact(catalog, TABLE, result)

    after = catalog.files(TABLE)
    assert first not in after.data, "57% deleted: rewritten"
    assert second in after.data and third in after.data, "2 of 30 deleted, and none: left as they were"
    assert result.files_compacted == 1 and result.files_written == 1
    assert len(after.data) == 8, "5 small files: too few to merge yet"
    assert after.deletes == files.deletes[3:], "the delete files of the first file went with it"
    assert result.delete_files_dropped == 3
    assert iceberg_rows(catalog) == duckdb_rows(catalog) == before
    assert duckdb_rows(catalog, snapshot_before) == before  # the snapshot before reads as it did
    # Nothing left to do: a second pass commits nothing.
    snapshot = catalog.snapshot_id(TABLE)
    again = MaintenanceResult()
    compact(catalog, TABLE, again)
    assert again.files_written == again.files_compacted == again.delete_files_dropped == 0
    assert catalog.snapshot_id(TABLE) == snapshot


def test_many_small_files_are_merged_and_many_delete_files_gathered(catalog: Catalog) -> None:
    first, second, third = in_key_order(catalog.data_files(TABLE))
    changed = [f"r{i:03d}" for i in range(30, 30 + maintenance.MERGE_FILES_PAST + 1)]
    assert len(changed) <= 30 / 3  # each under the share, and marked (not rewritten) by the replace
    for key in changed:  # one row of the second file each: a delete file and a small file each
        replace(catalog, [key], f"run-{key}")
    before = iceberg_rows(catalog)
    assert len(catalog.files(TABLE).deletes) == len(changed)

    result = MaintenanceResult()
    compact(catalog, TABLE, result)

    files = catalog.files(TABLE)
    assert {first, second, third} <= set(files.data), "none past the share"
    assert len(files.data) == 4, "the small files merged into one"
    assert len(files.deletes) == 1, "gathered"
    deletes = pq.read_table(files.deletes[0])
    assert set(deletes.column("file_path").to_pylist()) == {"file://" + second}
    assert sorted(deletes.column("pos").to_pylist()) == list(range(len(changed)))
    assert result.delete_files_dropped == len(changed) and result.files_compacted == len(changed)
    assert iceberg_rows(catalog) == duckdb_rows(catalog) == before


def test_a_file_with_deletes_under_the_share_is_left_with_them(catalog: Catalog) -> None:
    replace(catalog, ["r031"], "b")
    data = set(catalog.data_files(TABLE))
    snapshot = catalog.snapshot_id(TABLE)
    result = MaintenanceResult()
    compact(catalog, TABLE, result)
    # One delete file and one small file: nothing to merge, nothing past the share.
    assert result.files_written == result.files_compacted == 0
    assert set(catalog.data_files(TABLE)) == data and catalog.snapshot_id(TABLE) == snapshot


def test_runs_keep_the_manifests_of_the_current_snapshot_bounded(catalog: Catalog) -> None:
    snapshots = []
    for n in range(12):  # each replace adds two manifests (new rows, delete file)
        replace(catalog, [f"r{n:03d}", f"r{30 + n:03d}"], f"run{n}")
        snapshots.append((catalog.snapshot_id(TABLE), iceberg_rows(catalog)))
        table = catalog.table(TABLE)
        assert len(table.current_snapshot().manifests(table.io)) <= deletes.MERGE_MANIFESTS_PAST + 2
    for snapshot_id, rows in snapshots:  # every snapshot, merged or not, reads as it did
        assert duckdb_rows(catalog, snapshot_id) == iceberg_rows(catalog, snapshot_id) == rows
    assert len(catalog.files(TABLE).deletes) == 12 and len(duckdb_rows(catalog)) == 90


def test_maintain_merges_the_manifests_of_the_current_snapshot(
    catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as unmerged:  # as runs before the bound left them
        unmerged.setattr(deletes, "MERGE_MANIFESTS_PAST", 100)
        for n in range(6):
            replace(catalog, [f"r{n:03d}", f"r{30 + n:03d}"], f"run{n}")
    table = catalog.table(TABLE)
    assert len(table.current_snapshot().manifests(table.io)) >= 10
    before = iceberg_rows(catalog)
    maintain(LocalStorage(tmp_path), Catalog(tmp_path), keep_days=365)
    table = Catalog(tmp_path).table(TABLE)
    manifests = table.current_snapshot().manifests(table.io)
    assert len(manifests) <= 2, "one of data files, one of delete files"
    assert iceberg_rows(Catalog(tmp_path)) == duckdb_rows(Catalog(tmp_path)) == before
    assert all(Path(p).exists() for p in referenced_files(Catalog(tmp_path), TABLE))


def test_maintain_bounds_the_earlier_metadata_files_of_tables_made_before_the_bound(
    catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bound = int(TABLE_PROPERTIES["write.metadata.previous-versions-max"])
    assert bound <= 5
    table = catalog.table(TABLE)
    table.transaction().remove_properties(*TABLE_PROPERTIES).commit_transaction()  # a lake from before
    with monkeypatch.context() as before_the_bound:  # its runs do not set the properties either
        before_the_bound.setattr(catalog_module, "TABLE_PROPERTIES", {})
        for n in range(bound + 3):
            replace(catalog, [f"r{n:03d}"], f"run{n}")
    metadata = tmp_path / "warehouse" / "spotify" / TABLE / "metadata"
    assert len(list(metadata.glob("*.metadata.json"))) > bound + 3
    before = iceberg_rows(catalog)
    maintain(LocalStorage(tmp_path), Catalog(tmp_path), keep_days=365, orphan_age=dt.timedelta(0))
    table = Catalog(tmp_path).table(TABLE)
    assert table.properties.items() >= TABLE_PROPERTIES.items()
    on_disk = {p.as_uri() for p in metadata.glob("*.metadata.json")}
    assert len(on_disk) == bound + 1 and on_disk == kept_metadata_files(table)
    assert iceberg_rows(Catalog(tmp_path)) == before


def test_maintain_folds_deletes_early_while_the_lake_has_room(
    catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second, third = in_key_order(catalog.data_files(TABLE))
    replace(catalog, [f"r{i:03d}" for i in range(7)], "a")  # 7 of 30: past the early share, under the share
    assert budget.EARLY_DELETED_SHARE < 7 / 30 < maintenance.COMPACT_DELETED_SHARE
    before = iceberg_rows(catalog)
    monkeypatch.setattr(budget, "DELETES_BOUND", 1.0)  # no room: the file keeps its deletes
    maintain(LocalStorage(tmp_path), Catalog(tmp_path), keep_days=365)
    assert first in Catalog(tmp_path).data_files(TABLE) and Catalog(tmp_path).files(TABLE).deletes

    monkeypatch.setattr(budget, "DELETES_BOUND", 1e9)  # room: folded now
    result = maintain(LocalStorage(tmp_path), Catalog(tmp_path), keep_days=365)
    after = Catalog(tmp_path).files(TABLE)
    assert first not in after.data and {second, third} <= set(after.data)
    assert after.deletes == [] and result.files_compacted == 1
    assert iceberg_rows(Catalog(tmp_path)) == duckdb_rows(Catalog(tmp_path)) == before


def test_a_file_past_the_share_is_rewritten_whatever_the_bound(
    catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = in_key_order(catalog.data_files(TABLE))[0]
    for start, by in ((0, "a"), (6, "b"), (12, "c")):  # 17 of 30, marked in three replaces
        replace(catalog, [f"r{i:03d}" for i in range(start, min(start + 6, 17))], by)
    before = iceberg_rows(catalog)
    monkeypatch.setattr(budget, "LAKE_BOUND", 1.0)
    maintain(LocalStorage(tmp_path), Catalog(tmp_path), keep_days=365)
    assert first not in Catalog(tmp_path).data_files(TABLE)
    assert iceberg_rows(Catalog(tmp_path)) == duckdb_rows(Catalog(tmp_path)) == before


def test_compaction_writes_files_of_a_unit_and_splits_big_files_while_there_is_room(
    catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(budget, "UNIT_SHARE", 1e-9)
    monkeypatch.setattr(budget, "MIN_FILE_ROWS", 10)  # a unit: 10 rows; the 30-row files are 3 units each
    before = iceberg_rows(catalog)
    monkeypatch.setattr(budget, "LAKE_BOUND", 1e9)
    monkeypatch.setattr(budget, "SPLIT_BOUND", 1.0)  # a split has its own bound
    maintain(LocalStorage(tmp_path), Catalog(tmp_path), keep_days=365)
    assert len(Catalog(tmp_path).data_files(TABLE)) == 3, "no room: left whole"
    monkeypatch.setattr(budget, "SPLIT_BOUND", 1e9)
    maintain(LocalStorage(tmp_path), Catalog(tmp_path), keep_days=365)
    files = Catalog(tmp_path).data_files(TABLE)
    assert len(files) == 9 and all(pq.read_metadata(p).num_rows == 10 for p in files)
    assert iceberg_rows(Catalog(tmp_path)) == duckdb_rows(Catalog(tmp_path)) == before


def test_early_rewrites_keep_to_the_memory_bound(
    catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A table's rewrite reads its files into memory at once: early rewrites too stop at `COMPACT_MAX_BYTES`
    (the rest wait for the next pass). Without it, a pass whose table is past its retention (each rewrite
    shrinks the lake, so every one fits the lake bound) read every file past the early share at once."""
    monkeypatch.setattr(budget, "UNIT_SHARE", 1e-9)
    monkeypatch.setattr(budget, "MIN_FILE_ROWS", 10)  # the 30-row files are 3 units each: split early
    monkeypatch.setattr(budget, "LAKE_BOUND", 1e9)
    monkeypatch.setattr(budget, "SPLIT_BOUND", 1e9)
    smallest = min(Path(p.removeprefix("file://")).stat().st_size for p in catalog.data_files(TABLE))
    monkeypatch.setattr(maintenance, "COMPACT_MAX_BYTES", 2 * smallest - 1)  # one file's worth, never two
    before = iceberg_rows(catalog)
    result = maintain(LocalStorage(tmp_path), Catalog(tmp_path), keep_days=365)
    assert result.files_compacted == 1
    for _ in range(2):
        maintain(LocalStorage(tmp_path), Catalog(tmp_path), keep_days=365)
    files = Catalog(tmp_path).data_files(TABLE)
    assert len(files) == 9 and all(pq.read_metadata(p).num_rows == 10 for p in files)
    assert iceberg_rows(Catalog(tmp_path)) == duckdb_rows(Catalog(tmp_path)) == before
