"""Fixtures shared by the table tests: real Iceberg tables in tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from spotify_pipeline.tables.catalog import Catalog
from spotify_pipeline.transform import publish

from .test_deletes import TABLE, runs


@pytest.fixture
def catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Catalog:
    """A table of 3 files of 30 rows each (keys r000-r089), sorted by key; compaction writes 30-row files."""
    monkeypatch.setattr(publish, "PUBLISH_ROWS", 30)
    catalog = Catalog(tmp_path)
    ids = [f"r{i:03d}" for i in range(90)]
    catalog.overwrite(TABLE, (b for s in range(0, 90, 30) for b in runs(ids[s : s + 30]).to_batches()))
    assert len(catalog.data_files(TABLE)) == 3
    return catalog
