"""On an S3 lake the query sandbox reads the tables' files through s3fs, and no other object."""

from __future__ import annotations

import pytest

from spotify_pipeline import pipeline
from spotify_pipeline.errors import QueryError
from spotify_pipeline.lake.s3 import S3Storage
from spotify_pipeline.query.engine import QueryEngine
from spotify_pipeline.simulator import SimulatedSpotify
from spotify_pipeline.tables.catalog import open_catalog

from ..conftest import settings_for
from .conftest import Aws


def test_s3_lake_query_reads_tables_and_nothing_else(aws: Aws, simulator: SimulatedSpotify) -> None:
    remote = f"s3://{aws.bucket}/lake"
    assert pipeline.run(settings_for(simulator, remote), simulator.playlist_ids()).status == "succeeded"
    keys = S3Storage(remote).list("")
    raw = next(k for k in keys if k.startswith("raw/") and k.endswith(".jsonl.gz"))
    data = next(k for k in keys if k.startswith("warehouse/") and k.endswith(".parquet"))
    before = {k: S3Storage(remote).read(k) for k in (raw, data)}
    with QueryEngine(open_catalog(remote)) as engine:
        assert engine.execute("SELECT count(*) FROM playlists").rows == [(5,)]
        for sql in (
            f"SELECT content FROM read_blob('{remote}/{raw}')",
            f"SELECT * FROM glob('{remote}/*')",
            f"SELECT * FROM read_parquet('{remote}/warehouse/**/*.parquet')",
            f"EXPLAIN ANALYZE COPY (SELECT 1 AS x) TO '{remote}/{data}'",
            f"COPY (SELECT 1 AS x) TO '{remote}/{data}' (USE_TMP_FILE false)",
        ):
            with pytest.raises(QueryError):
                engine.execute(sql)
    assert {k: S3Storage(remote).read(k) for k in (raw, data)} == before
    assert len(S3Storage(remote).list("")) == len(keys)
