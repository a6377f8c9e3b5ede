"""replace.py's costs that grow with a table's history, on real Iceberg files: what one keyed replace
makes pyiceberg rebuild."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from spotify_pipeline.tables.catalog import Catalog

from .test_deletes import TABLE, iceberg_rows, runs


def count_metadata_builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that grows by one each time pyiceberg builds table metadata from staged updates."""
    import pyiceberg.table

    built: list[int] = []
    real = pyiceberg.table.update_table_metadata

    def counting(*args: Any, **kwargs: Any) -> Any:
        built.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(pyiceberg.table, "update_table_metadata", counting)
    return built


def test_a_replace_builds_the_staged_table_metadata_once_per_update(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pyiceberg 0.12 deep-copies the whole table metadata (every kept snapshot) at each read of a
    transaction's metadata, ~20 per commit; a replace builds it once per staged change."""
    catalog = Catalog(tmp_path / "lake")
    ids = [f"r{i:03d}" for i in range(30)]
    for i in range(0, 30, 10):  # a few snapshots of history
        catalog.append(TABLE, runs(ids[i : i + 10]))
    built = count_metadata_builds(monkeypatch)
    changed = ["r001", "r015", "r029"]
    catalog.replace_rows(TABLE, "raw_run_id", changed, runs(changed, by="second").to_batches())
    assert 1 <= len(built) <= 3  # the transaction's metadata before and after its snapshot is staged
    after = iceberg_rows(catalog)
    assert len(after) == 30 and sorted(r[0] for r in after if r[2] == "second") == changed


def test_an_append_builds_the_staged_table_metadata_once_per_update(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same for the appends every run makes (`quality_results`, `processed_raw_runs`)."""
    catalog = Catalog(tmp_path / "lake")
    catalog.append(TABLE, runs(["r000"]))
    built = count_metadata_builds(monkeypatch)
    catalog.append(TABLE, runs(["r001"]))
    assert 1 <= len(built) <= 3
    assert sorted(r[0] for r in iceberg_rows(catalog)) == ["r000", "r001"]
