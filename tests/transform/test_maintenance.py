"""`maintain` (issue #20): compaction, snapshot expiry and orphan removal keep the rows, shrink the lake,
and leave it ready for the next incremental run."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from spotify_pipeline.cli.main import main
from spotify_pipeline.errors import LakeError
from spotify_pipeline.lake import LocalStorage
from spotify_pipeline.tables import maintenance
from spotify_pipeline.tables.catalog import Catalog
from spotify_pipeline.tables.maintenance import maintain, referenced_files
from spotify_pipeline.transform import transform
from spotify_pipeline.transform.journal import PublishJournal, write_journal
from spotify_pipeline.transform.snapshots import current_snapshots

from ..conftest import SimulatorFactory
from .test_layout import data_files, day
from .test_transform import extract_at, table_contents


def warehouse(lake: Path) -> list[Path]:
    return [p for p in (lake / "warehouse").rglob("*") if p.is_file()]


def test_maintain_compacts_expires_and_removes_orphans_keeping_the_rows(
    make_simulator: SimulatorFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(maintenance, "MERGE_FILES_PAST", 1)  # 4 runs leave as many small files as a day would
    server = make_simulator(playlists=6, items_per_playlist=30)
    storage, catalog = LocalStorage(tmp_path), Catalog(tmp_path)
    for n, changed in ((1, []), (2, [0]), (3, [0]), (4, [1])):
        server.mutate(changed) if changed else None
        extract_at(server, tmp_path, day(n))
        transform(storage, catalog)
    assert len(data_files(catalog, "playlist_songs")) > 1  # each run appended its changed rows as a file
    before = table_contents(tmp_path)
    data = tmp_path / "warehouse" / "spotify" / "songs" / "data"
    orphan, fresh = data / "00000-0-orphan.parquet", data / "00000-0-in-progress.parquet"
    orphan.write_bytes(b"x" * 100)
    fresh.write_bytes(b"y" * 100)
    old = dt.datetime.now(dt.UTC).timestamp() - 7200
    os.utime(orphan, (old, old))
    files, size = len(warehouse(tmp_path)), sum(p.stat().st_size for p in warehouse(tmp_path))

    result = maintain(storage, Catalog(tmp_path), keep_days=0)

    catalog = Catalog(tmp_path)
    assert table_contents(tmp_path) == before
    assert len(data_files(catalog, "playlist_songs")) == 1  # small files rewritten together, sorted
    assert "playlist_songs" in result.tables_compacted and result.files_compacted > result.files_written
    assert result.expiry.snapshots > 0
    assert not orphan.exists() and fresh.exists()  # a young file may be a commit in progress: kept
    assert result.orphans_deleted >= 1
    after = warehouse(tmp_path)
    assert len(after) < files and sum(p.stat().st_size for p in after) < size
    for name in catalog.table_names():  # every file a table references is still there
        assert all(Path(p).exists() for p in referenced_files(catalog, name)), name
    # the next run is incremental again, and equals a rebuild
    server.mutate([3])
    extract_at(server, tmp_path, day(5))
    transform(storage, catalog)
    incremental = table_contents(tmp_path)
    transform(storage, catalog, rebuild=True)
    assert table_contents(tmp_path) == incremental


def test_maintain_command(make_simulator: SimulatorFactory, tmp_path: Path) -> None:
    server = make_simulator(playlists=3, items_per_playlist=20)
    extract_at(server, tmp_path, day(1))
    transform(LocalStorage(tmp_path), Catalog(tmp_path))
    out = CliRunner().invoke(main, ["maintain", "--lake", str(tmp_path), "--keep-days", "0", "--format", "json"])
    assert out.exit_code == 0, out.output
    assert set(json.loads(out.output)) >= {"files_compacted", "snapshots_expired", "orphans_deleted", "seconds"}
    out = CliRunner().invoke(main, ["maintain", "--lake", str(tmp_path)])
    assert out.exit_code == 0 and "compacted" in out.output, out.output


def test_maintain_refuses_while_a_publish_is_unfinished(make_simulator: SimulatorFactory, tmp_path: Path) -> None:
    server = make_simulator(playlists=3, items_per_playlist=20)
    storage, catalog = LocalStorage(tmp_path), Catalog(tmp_path)
    extract_at(server, tmp_path, day(1))
    transform(storage, catalog)
    write_journal(storage, PublishJournal(current_snapshots(catalog), []))
    with pytest.raises(LakeError, match="interrupted while publishing"):
        maintain(storage, catalog, keep_days=0)
