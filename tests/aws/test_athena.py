"""The Athena query path against moto (which returns canned results: moto does not run SQL), and every
named report transpiled to valid Athena SQL by sqlglot."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlglot
from moto.core import DEFAULT_ACCOUNT_ID

from spotify_pipeline import pipeline
from spotify_pipeline.config import load_settings
from spotify_pipeline.errors import ConfigError, QueryError
from spotify_pipeline.lake_api import Lake
from spotify_pipeline.query.athena import run_athena, to_athena
from spotify_pipeline.reports import all_reports
from spotify_pipeline.tables.catalog import open_catalog
from spotify_pipeline.tables.contract import DATA_TABLES

from ..conftest import cli, settings_for, sim_env
from .conftest import Aws


def test_every_report_transpiles_to_athena_sql() -> None:
    for name, report in all_reports().items():
        for params in ({}, {"playlist": "37i9dQZF1DXcBWIGoYBM5M"}):
            athena_sql = to_athena(report.render(params))
            parsed = sqlglot.parse_one(athena_sql, read="athena")  # raises if not valid for Athena
            assert parsed is not None, name
            assert "GROUP BY ALL" not in athena_sql.upper() and "::" not in athena_sql, name


def test_write_statements_are_refused_before_athena() -> None:
    for sql in ("DROP TABLE songs", "INSERT INTO songs VALUES (1)", "CREATE TABLE x AS SELECT 1"):
        try:
            to_athena(sql)
        except QueryError as exc:
            assert "only read queries" in str(exc)
        else:
            raise AssertionError(sql)


def test_submission_polling_and_paging(aws: Aws) -> None:
    # moto's Athena returns whatever results were registered for the next query (canned), via its API.
    header = {"Name": "n"}
    rows = [{"Data": [{"VarCharValue": "n"}]}] + [{"Data": [{"VarCharValue": str(i)}]} for i in range(5)]
    canned = {
        "account_id": DEFAULT_ACCOUNT_ID,
        "region": "us-east-1",
        "results": [
            {
                "rows": rows,
                "column_info": [
                    {
                        **header,
                        "Type": "varchar",
                        "CatalogName": "c",
                        "SchemaName": "s",
                        "TableName": "t",
                        "Label": "n",
                        "Precision": 1,
                        "Scale": 0,
                        "Nullable": "NULLABLE",
                        "CaseSensitive": True,
                    }
                ],
            }
        ],
    }
    httpx.post(f"{aws.endpoint}/moto-api/static/athena/query-results", json=canned, timeout=10)
    polls: list[float] = []
    result = run_athena(
        "SELECT count(*) AS n FROM songs",
        database="spotify",
        workgroup="primary",
        output=f"s3://{aws.bucket}/athena/",
        sleep=polls.append,
    )
    assert result.columns == ["n"]
    assert result.rows == [(str(i),) for i in range(5)]


def _versions(athena_sql: str) -> dict[str, str | None]:
    """table (as written, with its alias) -> the snapshot it is pinned to (None: not pinned)."""
    found: dict[str, str | None] = {}
    for table in sqlglot.parse_one(athena_sql, read="athena").find_all(sqlglot.exp.Table):
        version = table.args.get("version")
        found[table.alias_or_name] = version.expression.name if version is not None else None
    return found


def test_tables_are_pinned_to_the_snapshots_given_and_nothing_else_is() -> None:
    sql = """WITH songs AS (SELECT * FROM songs WHERE popularity > 1), t AS (SELECT 1 AS x)
             SELECT s.name FROM songs s, t JOIN spotify.albums a ON true
             WHERE s.song_id IN (SELECT song_id FROM song_artists) UNION ALL SELECT name FROM artists"""
    snapshots = {"songs": 11, "albums": 22, "song_artists": 33, "artists": 44}
    pinned = to_athena(sql, snapshots=snapshots, database="spotify")
    # The real `songs` inside the CTE is pinned; the CTE's own name where it is used is not a table.
    assert "songs FOR VERSION AS OF 11" in pinned
    assert _versions(pinned) == {"songs": "11", "t": None, "s": None, "a": "22", "song_artists": "33", "artists": "44"}
    assert sqlglot.parse_one(pinned, read="athena") is not None


def test_a_table_the_snapshots_show_empty_reads_as_empty_and_others_are_left_alone() -> None:
    pinned = to_athena(
        "SELECT count(*) FROM listens l JOIN other.songs o USING (song_id) JOIN songs USING (song_id)",
        snapshots={"listens": None, "songs": 5},
        database="spotify",
    )
    assert "WHERE FALSE" in pinned.upper()  # made after the snapshots: empty, as it was then
    versions = _versions(pinned)
    assert versions["o"] is None  # another database's table is not ours to pin
    assert versions["songs"] == "5"
    assert to_athena("SELECT 1 FROM songs") == "SELECT 1 FROM songs"  # no snapshots: as written


def test_readers_of_an_s3_lake_never_see_half_a_publish(aws: Aws, make_simulator: Any, tmp_path: Path) -> None:
    """A run killed half-way through its commits to Glue (its publish journal left on S3): DuckDB readers
    (`Lake.engine`: `query`, `report`) show every table as before the run, and `query --engine athena` names
    Athena those same snapshots; the next run redoes the publish and readers see all of it."""
    server = make_simulator(seed=3, playlists=3, items_per_playlist=10)
    remote = f"s3://{aws.bucket}/lake"
    settings = settings_for(server, remote)
    assert pipeline.run(settings, server.playlist_ids()).status == "succeeded"
    catalog = open_catalog(remote)
    before_ids = {name: catalog.snapshot_id(name) for name in catalog.table_names()}
    before = Lake.open(settings=settings).rows(FINGERPRINT).rows
    server.mutate([0, 1])
    env = {**sim_env(server, tmp_path), "SPOTIFY_PIPELINE_LAKE": remote}
    run_args = ["run", *[a for pid in server.playlist_ids() for a in ("--playlist", pid)]]
    killed = cli(*run_args, env={**env, "SPOTIFY_PIPELINE_CRASH_AT": "transform.table_committed:5"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    now_ids = {name: catalog.snapshot_id(name) for name in catalog.table_names()}
    assert sum(now_ids[n] != before_ids[n] for n in DATA_TABLES) == 5  # half the publish is in Glue

    assert sorted(Lake.open(settings=settings).rows(FINGERPRINT).rows) == sorted(before)
    sql = "SELECT count(*) FROM playlist_songs ps JOIN songs s USING (song_id) JOIN playlists p USING (playlist_id)"
    asked = cli("query", "--engine", "athena", sql, env=env)
    assert asked.returncode == 0, asked.stderr
    athena = aws.client("athena")
    (query_id,) = athena.list_query_executions()["QueryExecutionIds"]  # type: ignore[attr-defined]
    received = athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]["Query"]  # type: ignore[attr-defined]
    assert _versions(received) == {alias: str(before_ids[name]) for alias, name in PINNED.items()}
    assert any(before_ids[name] != now_ids[name] for name in PINNED.values())  # the current one would not do

    # The killed run's S3 lock is taken over after an hour (lake/lock.py S3LakeLock): as if it had passed.
    aws.client("s3").delete_object(Bucket=aws.bucket, Key="lake/_state/run.lock")  # type: ignore[attr-defined]
    assert pipeline.run(settings, server.playlist_ids()).status == "succeeded"
    after = Lake.open(settings=settings).rows(FINGERPRINT).rows
    assert sorted(after) != sorted(before)
    assert {t for t, *_ in after} == set(DATA_TABLES)


def test_athena_refuses_a_folder_lake(tmp_path: Path) -> None:
    local = Lake.open(settings=load_settings({"lake": str(tmp_path / "lake")}, env={}))
    with pytest.raises(ConfigError, match="Athena reads tables in Glue"):
        local.athena("SELECT 1")


PINNED = {"ps": "playlist_songs", "s": "songs", "p": "playlists"}
FINGERPRINT = " UNION ALL ".join(
    f"SELECT '{name}' AS t, count(*) AS n, coalesce(sum(hash({name})), 0)::VARCHAR AS h FROM {name}"
    for name in DATA_TABLES
)
