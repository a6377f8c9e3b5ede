"""Table layout (issue #20): `playlist_songs` is bucketed by playlist, and a run that changes a playlist
rewrites only the data files of its bucket; a lake made before the layout migrates on its next write."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from pyiceberg.transforms import BucketTransform
from pyiceberg.types import StringType

from spotify_pipeline import catalog as catalog_module
from spotify_pipeline.catalog import BUCKETS, Catalog
from spotify_pipeline.lake import LocalStorage
from spotify_pipeline.transform import transform

from ..conftest import SimulatorFactory
from .test_transform import extract_at, table_contents


def files_by_bucket(catalog: Catalog) -> dict[int | None, set[str]]:
    table = catalog.table("playlist_songs")
    out: dict[int | None, set[str]] = {}
    for task in table.scan().plan_files():
        bucket = task.file.partition[0] if len(task.file.partition) else None
        out.setdefault(bucket, set()).add(task.file.file_path)
    return out


def bucket_of(playlist_id: str) -> Any:
    _, buckets = BUCKETS["playlist_songs"]
    return BucketTransform(buckets).transform(StringType())(playlist_id)


def day(n: int) -> dt.datetime:
    return dt.datetime(2026, 10, n, 12, tzinfo=dt.UTC)


def test_a_changed_playlist_rewrites_only_the_files_of_its_bucket(
    make_simulator: SimulatorFactory, tmp_path: Path
) -> None:
    server = make_simulator(playlists=8, items_per_playlist=30)
    storage, catalog = LocalStorage(tmp_path), Catalog(tmp_path)
    extract_at(server, tmp_path, day(1))
    transform(storage, catalog)
    before = files_by_bucket(catalog)
    assert None not in before and len(before) > 2  # laid out in buckets from the first write
    changed = server.catalog.id_of("playlist", 0)
    server.mutate([0])
    extract_at(server, tmp_path, day(2))
    result = transform(storage, catalog)
    assert result.batch_rows["playlist_songs"] > 0
    after = files_by_bucket(catalog)
    for bucket, paths in before.items():
        if bucket == bucket_of(changed):
            assert after[bucket].isdisjoint(paths)  # rewritten
        else:
            assert after.get(bucket) == paths, bucket  # untouched: the very same files
    snapshot = catalog.table("playlist_songs").current_snapshot()
    assert snapshot is not None and snapshot.summary is not None
    incremental = table_contents(tmp_path)
    transform(storage, catalog, rebuild=True)
    assert table_contents(tmp_path) == incremental


def test_a_lake_made_before_the_layout_migrates_on_its_next_write(
    make_simulator: SimulatorFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make_simulator(playlists=6, items_per_playlist=30)
    storage, catalog = LocalStorage(tmp_path), Catalog(tmp_path)
    with monkeypatch.context() as old_code:  # today's lakes: no partition spec
        old_code.setattr(catalog_module, "BUCKETS", {})
        extract_at(server, tmp_path, day(1))
        transform(storage, catalog)
    assert set(files_by_bucket(Catalog(tmp_path))) == {None}
    server.mutate([2])
    extract_at(server, tmp_path, day(2))
    transform(storage, Catalog(tmp_path))
    catalog = Catalog(tmp_path)
    table = catalog.table("playlist_songs")
    assert catalog.fully_partitioned(table) and table.spec().fields
    assert None not in files_by_bucket(catalog)
    incremental = table_contents(tmp_path)
    transform(storage, catalog, rebuild=True)
    assert table_contents(tmp_path) == incremental
    # and the next change is published by bucket
    server.mutate([4])
    extract_at(server, tmp_path, day(3))
    before = files_by_bucket(catalog)
    transform(storage, catalog)
    after = files_by_bucket(catalog)
    changed = bucket_of(server.catalog.id_of("playlist", 4))
    assert all(after.get(b) == p for b, p in before.items() if b != changed)
