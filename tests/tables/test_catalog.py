"""catalog.py on real Iceberg files in tmp_path: tables created and loaded by name, commits, and `check()`
refusing a lake that was copied, moved, or lost its catalog.db."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path

import pyarrow as pa
import pytest

from spotify_pipeline.errors import LakeError
from spotify_pipeline.lake.layout import CATALOG_FILE, WAREHOUSE_DIR
from spotify_pipeline.tables.catalog import Catalog
from spotify_pipeline.tables.contract import TABLES

TABLE = "processed_raw_runs"  # a small contract table: raw_run_id, processed_at, by_run_id
WHEN = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def runs(*ids: str) -> pa.Table:
    rows = [{"raw_run_id": i, "processed_at": WHEN, "by_run_id": "test"} for i in ids]
    return pa.Table.from_pylist(rows, schema=TABLES[TABLE].schema)


def stored(catalog: Catalog) -> list[str]:
    return sorted(catalog.read(TABLE).column("raw_run_id").to_pylist())


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    """A lake whose catalog holds one table with two commits."""
    root = tmp_path / "lake"
    catalog = Catalog(root)
    catalog.append(TABLE, runs("a"))
    catalog.append(TABLE, runs("b"))
    return root


def test_a_new_lake_passes_the_check_and_has_no_tables(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "new")
    catalog.check()
    assert not catalog.exists()
    assert catalog.table_names() == []


def test_tables_are_created_with_the_contract_and_loaded_by_name(lake: Path) -> None:
    again = Catalog(lake)  # a second process: everything comes from catalog.db and warehouse/
    assert again.table_names() == [TABLE]
    assert again.table(TABLE).schema().as_arrow().names == TABLES[TABLE].schema.names
    assert stored(again) == ["a", "b"]
    files = again.data_files(TABLE)
    assert len(files) == 2 and all(f.startswith(str(lake / WAREHOUSE_DIR)) for f in files)


def test_each_commit_is_a_snapshot_and_old_snapshots_stay_readable(lake: Path) -> None:
    catalog = Catalog(lake)
    before = catalog.snapshot_id(TABLE)
    catalog.overwrite(TABLE, runs("c", "d"))
    after = catalog.snapshot_id(TABLE)
    assert after != before
    assert stored(catalog) == ["c", "d"]
    assert len(catalog.data_files(TABLE, before)) == 2  # time travel to the snapshot before the overwrite
    with pytest.raises(LakeError, match=f"snapshot 12345 of table {TABLE} no longer exists"):
        catalog.data_files(TABLE, 12345)


def test_an_overwrite_from_record_batches_is_one_commit(lake: Path) -> None:
    catalog = Catalog(lake)
    history = len(catalog.table(TABLE).history())
    batches = runs("x", "y", "z").to_batches(max_chunksize=1)
    assert len(batches) == 3
    catalog.overwrite(TABLE, iter(batches))
    assert stored(catalog) == ["x", "y", "z"]
    # one delete and one append snapshot, however many slices; readers never see a partial table
    assert len(catalog.table(TABLE).history()) == history + 2


def test_an_empty_append_commits_nothing(lake: Path) -> None:
    catalog = Catalog(lake)
    before = catalog.snapshot_id(TABLE)
    catalog.append(TABLE, runs())
    assert catalog.snapshot_id(TABLE) == before


@pytest.mark.parametrize("how", ["copied", "moved"])
def test_a_copied_or_moved_lake_is_refused(lake: Path, tmp_path: Path, how: str) -> None:
    elsewhere = tmp_path / "elsewhere"
    (shutil.copytree if how == "copied" else shutil.move)(lake, elsewhere)
    with pytest.raises(LakeError, match=f"this lake was copied or moved from {lake}") as refused:
        Catalog(elsewhere).table_names()
    assert "spotify-pipeline repair" in str(refused.value.hint)
    if how == "copied":
        assert stored(Catalog(lake)) == ["a", "b"]  # the original is still fine


def test_a_missing_catalog_is_refused_while_the_warehouse_holds_tables(lake: Path) -> None:
    (lake / CATALOG_FILE).unlink()
    with pytest.raises(LakeError, match=r"catalog.db is missing but warehouse/ holds 1 tables"):
        Catalog(lake).check()
    assert not (lake / CATALOG_FILE).exists()  # the check never creates it


def test_an_empty_catalog_file_is_refused(lake: Path) -> None:
    (lake / CATALOG_FILE).write_bytes(b"")
    with pytest.raises(LakeError, match=r"catalog.db is empty \(0 bytes\)"):
        Catalog(lake).check()


def test_a_catalog_that_lists_no_tables_is_refused(lake: Path, tmp_path: Path) -> None:
    (lake / CATALOG_FILE).unlink()
    empty = Catalog(tmp_path / "blank")
    empty.iceberg  # creates an empty catalog.db (schema, no tables)  # noqa: B018
    shutil.copy(tmp_path / "blank" / CATALOG_FILE, lake / CATALOG_FILE)
    with pytest.raises(LakeError, match=r"catalog.db lists no tables but warehouse/ holds 1 tables"):
        Catalog(lake).check()


def test_a_lake_path_iceberg_cannot_hold_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LakeError, match=re.escape("contains # or ?")):
        Catalog(tmp_path / "lake#1").check()


def test_a_table_is_loaded_again_only_when_catalog_db_points_at_a_new_metadata_file(lake: Path) -> None:
    """A metadata file never changes once written: the table loaded from it is reused while it is current,
    and a commit by anyone (here another Catalog, as another process would) is seen at once."""
    catalog = Catalog(lake)
    first = catalog.table(TABLE)
    assert catalog.table(TABLE) is first  # not read and parsed again
    Catalog(lake).append(TABLE, runs("c"))
    fresh = catalog.table(TABLE)
    assert fresh is not first and fresh.metadata_location != first.metadata_location
    assert stored(catalog) == ["a", "b", "c"]
    catalog.append(TABLE, runs("d"))  # through the reused table: it moves on with its commit
    assert catalog.table(TABLE) is fresh and stored(Catalog(lake)) == ["a", "b", "c", "d"]


def test_a_snapshots_files_are_planned_once_and_a_new_snapshot_is_planned_anew(lake: Path) -> None:
    catalog = Catalog(lake)
    before = catalog.snapshot_id(TABLE)
    files = catalog.files(TABLE)
    assert catalog.files(TABLE) is files and catalog.files(TABLE, before) is files  # not planned again
    assert sum(files.records) == 2
    catalog.append(TABLE, runs("c"))
    after = catalog.files(TABLE)
    assert after is not files and len(after.data) == len(files.data) + 1 and sum(after.records) == 3
    assert catalog.files(TABLE, before) is files  # the old snapshot's files are still its own
    for run in "defg":  # a long-lived Catalog keeps only the newest few snapshots' files
        catalog.append(TABLE, runs(run))
        catalog.files(TABLE)
    again = catalog.files(TABLE, before)
    assert again is not files and again == files


def test_key_range_orders_keys_as_the_values_they_stand_for() -> None:
    """Keys reach `replace_rows` as text: numbers must not be ranged as text ("10" < "9"), nor times."""
    from pyiceberg.expressions import And, GreaterThanOrEqual, LessThanOrEqual

    from spotify_pipeline.tables.writes import key_range

    assert key_range("n", pa.int64(), ["9", "10", "100"]) == And(
        GreaterThanOrEqual("n", "9"), LessThanOrEqual("n", "100")
    )
    times = ["2024-01-01T00:00:00.500000+00:00", "2024-01-01T00:00:00+00:00", "2023-12-31T23:00:00-02:00"]
    assert key_range("t", pa.timestamp("us", tz="UTC"), times) == And(
        GreaterThanOrEqual("t", times[1]), LessThanOrEqual("t", times[2])
    )
    assert key_range("n", pa.int64(), []) is None and key_range("f", pa.float64(), ["1.5"]) is None


def test_slices_written_in_parallel_come_back_in_order_and_a_failure_is_raised() -> None:
    """`_in_parallel` (catalog.py): the data files of slices encoded on several threads are committed in the
    slices' order, and a slice that cannot be written fails the whole write."""
    import time

    from spotify_pipeline.tables.writes import _in_parallel

    def write(rows: pa.Table) -> list[int]:
        n = rows.column("n")[0].as_py()
        time.sleep(0.01 * (n % 3))  # finish out of order
        if n == 5:
            raise OSError("disk full")
        return [n, -n]

    slices = [pa.table({"n": [n]}) for n in range(9)]
    assert list(_in_parallel(write, slices[:5])) == [v for n in range(5) for v in (n, -n)]
    with pytest.raises(OSError, match="disk full"):
        list(_in_parallel(write, slices))
