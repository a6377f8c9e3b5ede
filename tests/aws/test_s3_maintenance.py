"""`maintain` on an S3 lake with Glue tables (moto server on 127.0.0.1): orphan files go as on disk."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from spotify_pipeline import pipeline
from spotify_pipeline.lake.s3 import S3Storage
from spotify_pipeline.tables import maintenance
from spotify_pipeline.tables.catalog import open_catalog
from spotify_pipeline.tables.maintenance import maintain

from ..conftest import SimulatorFactory, comparable_tables, kept_metadata_files, referenced_files, settings_for
from .conftest import Aws


def last_modified(storage: S3Storage, key: str) -> dt.datetime:
    head = storage.client.head_object(Bucket=storage.bucket, Key=storage._key(key))
    return head["LastModified"]  # type: ignore[no-any-return]


def put_later_than(storage: S3Storage, key: str, earlier: dt.datetime) -> dt.datetime:
    """PUT `key` until S3 stamps it after `earlier` (S3's LastModified has whole seconds)."""
    while True:
        storage.write_atomic(key, b"young", overwrite=True)
        stamp = last_modified(storage, key)
        if stamp > earlier:
            return stamp
        time.sleep(0.05)


def test_maintain_on_s3_deletes_old_orphans_and_keeps_young_and_referenced_files(
    aws: Aws, make_simulator: SimulatorFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make_simulator(playlists=3, items_per_playlist=20)
    remote = f"s3://{aws.bucket}/lake"
    pipeline.run(settings_for(server, remote), server.playlist_ids())
    rows = comparable_tables(remote)
    storage = S3Storage(remote)
    songs = next(k for k in storage.list("warehouse/") if "/songs/data/" in k and k.endswith(".parquet"))
    folder = songs.rpartition("/")[0]
    tables = folder.rpartition("/songs/")[0]  # warehouse/<database>.db
    orphans = [f"{folder}/00000-0-orphan-{i}.parquet" for i in range(5)]
    dropped = f"{tables}/dropped_table/data/00000-0-old.parquet"  # a table no longer in Glue
    raw = "raw/playlists/not-a-table-file.jsonl.gz"  # outside the warehouse: never maintenance's business
    for key in (*orphans, dropped, raw):
        storage.write_atomic(key, b"x" * 100)
    young = f"{folder}/00000-0-in-progress.parquet"
    young_at = put_later_than(storage, young, max(last_modified(storage, k) for k in (*orphans, dropped)))
    monkeypatch.setattr(maintenance, "S3_DELETE_BATCH", 2)  # several DeleteObjects calls

    # The cutoff falls between the orphans (a second or more before the young file) and the young file.
    now = young_at + maintenance.ORPHAN_AGE - dt.timedelta(milliseconds=500)
    result = maintain(storage, open_catalog(remote), keep_days=365, now=now)

    keys = set(storage.list(""))
    assert not keys & {*orphans, dropped}
    assert {young, raw} <= keys
    assert result.orphans_deleted == 6 and result.orphan_bytes_deleted == 600
    catalog = open_catalog(remote)
    stored = {storage.uri(k) for k in keys}
    assert referenced_files(catalog) <= stored
    for name in catalog.table_names():
        assert kept_metadata_files(catalog.table(name)) <= stored, name
    assert comparable_tables(remote) == rows


def test_maintain_on_s3_keeps_files_of_a_folder_whose_table_lives_elsewhere(
    aws: Aws, make_simulator: SimulatorFactory
) -> None:
    # Two lakes sharing one Glue database: its `songs` table lives under the first lake, so the second
    # lake's songs/ folder cannot be judged from that table's metadata, and nothing in it is deleted.
    server = make_simulator(playlists=2, items_per_playlist=10)
    first = f"s3://{aws.bucket}/lake"
    pipeline.run(settings_for(server, first), server.playlist_ids())
    songs = next(k for k in S3Storage(first).list("warehouse/") if "/songs/data/" in k)
    second = S3Storage(f"s3://{aws.bucket}/other-lake")
    second.write_atomic(songs, b"x")
    now = last_modified(second, songs) + 2 * maintenance.ORPHAN_AGE
    result = maintain(second, open_catalog(second.root_uri), keep_days=365, now=now)
    assert second.exists(songs) and result.orphans_deleted == 0


def test_listing_reads_every_page_and_deletes_go_in_requests_of_at_most_1000_keys(aws: Aws) -> None:
    # S3 returns at most 1,000 keys per ListObjectsV2 page and takes at most 1,000 per DeleteObjects.
    from spotify_pipeline.lake.s3 import S3_DELETE_MAX

    storage = S3Storage(f"s3://{aws.bucket}/lake")
    keys = [f"warehouse/x/{i:05d}" for i in range(S3_DELETE_MAX + 1)]
    for key in keys:
        storage.write_atomic(key, b"")
    listed = [o.key for o in storage.list_objects("warehouse/")]
    assert listed == keys
    with pytest.raises(ValueError, match="at most 1000 keys"):
        storage.delete_many(keys)
    assert storage.delete_many(keys[:S3_DELETE_MAX]) == set() and storage.delete_many(keys[S3_DELETE_MAX:]) == set()
    assert list(storage.list_objects("warehouse/")) == []
