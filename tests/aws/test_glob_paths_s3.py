"""An S3 lake whose prefix holds `[1]` reads its own objects, not those of the prefix the unescaped pattern
matches (`1`): DuckDB globs `s3://` paths too, through s3fs (tests/tables/test_glob_paths.py: local)."""

from __future__ import annotations

import boto3
import pyarrow as pa
import pyarrow.parquet as pq

from spotify_pipeline import pipeline
from spotify_pipeline.query.engine import QueryEngine
from spotify_pipeline.simulator import SimulatedSpotify
from spotify_pipeline.tables.catalog import open_catalog

from ..conftest import settings_for
from .conftest import Aws


def test_s3_lake_under_brackets_reads_its_own_objects(aws: Aws, simulator: SimulatedSpotify) -> None:
    remote = f"s3://{aws.bucket}/x[1]/lake"
    assert pipeline.run(settings_for(simulator, remote), simulator.playlist_ids()).status == "succeeded"
    s3 = boto3.client("s3", endpoint_url=aws.endpoint, region_name="us-east-1")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=aws.bucket, Prefix="x[1]/lake/warehouse/")["Contents"]]
    for key in (k for k in keys if "/playlists/data/" in k and k.endswith(".parquet")):
        # the decoy: the same object under x1/, every playlist renamed
        table = pq.read_table(pa.BufferReader(s3.get_object(Bucket=aws.bucket, Key=key)["Body"].read()))
        table = table.set_column(table.schema.get_field_index("name"), "name", pa.array(["DECOY"] * len(table)))
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        s3.put_object(Bucket=aws.bucket, Key="x1/" + key.removeprefix("x[1]/"), Body=sink.getvalue().to_pybytes())
    with QueryEngine(open_catalog(remote)) as engine:
        names = [r[0] for r in engine.execute("SELECT name FROM playlists").rows]
    assert len(names) == 5 and "DECOY" not in names
