"""The Athena query path against moto (which returns canned results: moto does not run SQL), and every
named report transpiled to valid Athena SQL by sqlglot."""

from __future__ import annotations

import httpx
import sqlglot
from moto.core import DEFAULT_ACCOUNT_ID

from spotify_pipeline.errors import QueryError
from spotify_pipeline.query.athena import run_athena, to_athena
from spotify_pipeline.reports import all_reports

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
