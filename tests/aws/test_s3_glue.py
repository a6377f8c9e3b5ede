"""The same pipeline with the lake on S3 and tables in Glue (moto server on 127.0.0.1)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from spotify_pipeline import pipeline
from spotify_pipeline.errors import LakeError
from spotify_pipeline.lake.s3 import S3Storage
from spotify_pipeline.simulator import SimulatedSpotify
from spotify_pipeline.tables.contract import DATA_TABLES

from ..conftest import comparable_tables, kept_metadata_files, referenced_files, settings_for
from .conftest import Aws


def test_pipeline_on_s3_and_glue_equals_a_local_run(aws: Aws, simulator: SimulatedSpotify, tmp_path: Path) -> None:
    remote = f"s3://{aws.bucket}/lake"
    report = pipeline.run(settings_for(simulator, remote), simulator.playlist_ids())
    assert report.status == "succeeded"
    local = pipeline.run(settings_for(simulator, tmp_path), simulator.playlist_ids())
    assert local.status == "succeeded"
    assert comparable_tables(remote) == comparable_tables(str(tmp_path))

    glue = aws.client("glue")
    tables = {t["Name"] for t in glue.get_tables(DatabaseName="spotify")["TableList"]}  # type: ignore[attr-defined]
    assert set(DATA_TABLES) <= tables
    songs = glue.get_table(DatabaseName="spotify", Name="songs")["Table"]  # type: ignore[attr-defined]
    assert songs["Parameters"]["table_type"].upper() == "ICEBERG"
    s3 = S3Storage(remote)
    keys = s3.list("")
    assert any(k.startswith("raw/playlist_items/") for k in keys)
    assert any(k.startswith("warehouse/") and k.endswith(".parquet") for k in keys)
    assert not any(k == "_state/run.lock" for k in keys), "the S3 lock is released"

    again = pipeline.run(settings_for(simulator, remote), simulator.playlist_ids())
    assert again.extract is not None and again.extract.playlists_unchanged == 5
    assert comparable_tables(remote) == comparable_tables(str(tmp_path))


def test_raw_zone_on_s3_refuses_overwrites(aws: Aws) -> None:
    storage = S3Storage(f"s3://{aws.bucket}/lake")
    storage.write_atomic("raw/playlists/x.jsonl.gz", b"first")
    with pytest.raises(LakeError) as info:
        storage.write_atomic("raw/playlists/x.jsonl.gz", b"second")
    assert "refusing to overwrite" in str(info.value)
    assert storage.read("raw/playlists/x.jsonl.gz") == b"first"
    storage.write_atomic("_state/extract_state.json", b"1", overwrite=True)
    storage.write_atomic("_state/extract_state.json", b"2", overwrite=True)
    assert storage.read("_state/extract_state.json") == b"2"


def test_s3_bucket_name_is_honoured(aws: Aws) -> None:
    from spotify_pipeline.config import load_settings

    assert load_settings(env={"S3_BUCKET_NAME": aws.bucket}).lake == f"s3://{aws.bucket}/lake"
    assert load_settings(env={"S3_BUCKET_NAME": aws.bucket, "SPOTIFY_PIPELINE_LAKE": "/x"}).lake == "/x"


def test_old_table_snapshots_expire_on_s3(aws: Aws, make_simulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # The same retention as on disk, through pyiceberg's S3 file IO and a Glue commit.
    from spotify_pipeline.tables import catalog as catalog_module
    from spotify_pipeline.tables.catalog import TABLE_PROPERTIES, open_catalog

    server = make_simulator(playlists=3, items_per_playlist=20)
    remote = f"s3://{aws.bucket}/lake"
    settings = settings_for(server, remote, table_history_days=0)
    monkeypatch.setattr(catalog_module, "TABLE_PROPERTIES", {})  # tables from before the metadata-file bound
    pipeline.run(settings, server.playlist_ids())
    server.mutate([0])
    bound = {**TABLE_PROPERTIES, "write.metadata.previous-versions-max": "1"}
    monkeypatch.setattr(catalog_module, "TABLE_PROPERTIES", bound)
    report = pipeline.run(settings, server.playlist_ids())
    assert report.history is not None and report.history.snapshots > 0  # all but each current one (below)
    assert report.history.files_deleted > 0
    catalog = open_catalog(remote)
    for name in catalog.table_names():
        # (The run's pipeline_runs line is its publish's last commit, before the expiry: one snapshot there too.)
        assert len(catalog.table(name).metadata.snapshots) == 1, name
    keys = S3Storage(remote).list("warehouse/")  # less the folder markers and table metadata files
    stored = {f"{remote}/{k}" for k in keys if not k.endswith(("/", ".metadata.json"))}
    assert stored == referenced_files(catalog)
    # The second run set the metadata-file bound on the Glue tables it wrote (a table whose rows did not
    # change is not rewritten, so it gets the bound at its next write); earlier metadata files went from S3.
    second = int(report.started_at.timestamp() * 1000)
    written = [n for n in catalog.table_names() if catalog.table(n).current_snapshot().timestamp_ms >= second]
    assert {"playlist_songs", "songs", "playlists"} <= set(written)
    for name in written:
        table = catalog.table(name)
        assert table.properties.items() >= bound.items(), name
        on_s3 = {f"{remote}/{k}" for k in keys if f"/{name}/metadata/" in k and k.endswith(".metadata.json")}
        assert on_s3 == kept_metadata_files(table), name
        assert len(on_s3) == 2, name


def test_s3_lock_release_is_owner_checked_and_a_stale_lock_is_taken_over(aws: Aws) -> None:
    import json

    from spotify_pipeline.lake.lock import LOCK_NAME, S3LakeLock

    storage = S3Storage(f"s3://{aws.bucket}/lake")
    first = S3LakeLock(storage, "run").__enter__()
    with pytest.raises(LakeError) as info, S3LakeLock(storage, "transform"):
        pass
    assert "another run" in str(info.value)
    # Another run replaces the lock (e.g. it judged ours stale): releasing ours must leave theirs.
    theirs = json.dumps({"command": "run", "started_at": "2999-01-01T00:00:00+00:00", "token": "b"}).encode()
    storage.write_atomic(LOCK_NAME, theirs, overwrite=True)
    first.__exit__(None, None, None)
    assert storage.read(LOCK_NAME) == theirs
    # A lock from a run that died long ago is taken over, and released by its new owner.
    storage.write_atomic(LOCK_NAME, json.dumps({"started_at": "2000-01-01T00:00:00+00:00"}).encode(), overwrite=True)
    with S3LakeLock(storage, "run") as lock:
        assert lock.recovered_from == {"started_at": "2000-01-01T00:00:00+00:00"}
        assert json.loads(storage.read(LOCK_NAME))["command"] == "run"
    assert not storage.exists(LOCK_NAME)


def test_glue_tables_replace_only_the_files_holding_a_change_and_maintenance_runs_on_a_schedule(
    aws: Aws, make_simulator: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The layout of issue #20 on S3 + Glue: the same sorted files and filtered replace as on disk, and the
    # scheduled maintenance Lambda handler compacting what the runs appended.
    from spotify_pipeline.aws import handlers
    from spotify_pipeline.tables import maintenance
    from spotify_pipeline.tables.catalog import open_catalog
    from spotify_pipeline.transform import publish

    from .test_handlers import SCHEDULED_EVENT, FakeLambdaContext

    monkeypatch.setattr(publish, "PUBLISH_ROWS", 40)  # several files per table at this size
    server = make_simulator(playlists=6, items_per_playlist=30)
    remote = f"s3://{aws.bucket}/lake"
    settings = settings_for(server, remote)
    pipeline.run(settings, server.playlist_ids())
    before = set(open_catalog(remote).data_files("playlist_songs"))
    assert len(before) > 3
    server.mutate([2])
    pipeline.run(settings, server.playlist_ids())
    after = set(open_catalog(remote).data_files("playlist_songs"))
    assert 0 < len(before - after) <= 2  # only the file(s) holding the changed playlist were rewritten
    rows = comparable_tables(remote)

    monkeypatch.setenv("SPOTIFY_PIPELINE_LAKE", remote)
    monkeypatch.setattr(maintenance, "MERGE_FILES_PAST", 1)  # two runs leave as many small files as a day
    result = handlers.maintain(SCHEDULED_EVENT, FakeLambdaContext())
    assert result["tables_compacted"] and result["files_compacted"] > result["files_written"]
    assert comparable_tables(remote) == rows
    assert not any(k == "_state/run.lock" for k in S3Storage(remote).list("_state/")), "the S3 lock is released"


def test_delete_files_on_s3_are_read_and_folded_by_maintain(
    aws: Aws, make_simulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Merge-on-read on S3: the delete files name s3:// data files, DuckDB reads them through fsspec, and
    # the rows equal a local lake's given the same runs (and pyiceberg's own scan).
    from spotify_pipeline.lake.storage import open_storage
    from spotify_pipeline.tables import maintenance, replace
    from spotify_pipeline.tables.catalog import open_catalog

    monkeypatch.setattr(replace, "REWRITE_SHARE", 1.0)  # small tables: mark rows deleted, never rewrite
    server = make_simulator(playlists=4, items_per_playlist=30)
    remote = f"s3://{aws.bucket}/lake"
    for lake in (remote, str(tmp_path)):
        pipeline.run(settings_for(server, lake), server.playlist_ids())
    server.mutate([1])
    for lake in (remote, str(tmp_path)):
        pipeline.run(settings_for(server, lake), server.playlist_ids())
    catalog = open_catalog(remote)
    deletes = catalog.files("songs").deletes
    assert deletes and all(path.startswith(f"{remote}/warehouse/") for path in deletes)
    tables = comparable_tables(remote)
    assert tables == comparable_tables(str(tmp_path))
    assert catalog.read("songs").num_rows == len(tables["songs"])
    monkeypatch.setattr(maintenance, "COMPACT_DELETED_SHARE", 0.0)  # every file with deletes: fold them all in
    maintenance.maintain(open_storage(remote), catalog, keep_days=365)
    assert open_catalog(remote).files("songs").deletes == []
    assert comparable_tables(remote) == tables
