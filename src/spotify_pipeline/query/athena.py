"""Queries through Amazon Athena: SQL written once in DuckDB's dialect, transpiled by sqlglot, run in a
workgroup, polled, and read back page by page. Each of the lake's tables is read at the snapshot
`query/consistent.py` picks (Iceberg time travel, `FOR VERSION AS OF`), so a query that runs while a transform
commits its tables one by one in Glue never joins half of one run with half of another."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from ..errors import QueryError
from .engine import READ_ONLY_STATEMENTS, QueryResult

POLL_S = 0.5


def to_athena(sql: str, snapshots: Mapping[str, int | None] | None = None, database: str = "") -> str:
    """DuckDB SQL -> Athena (Trino) SQL. Refuses anything that is not a read. With `snapshots`, every table of
    `database` they name is read at its snapshot (one they name None did not exist then: read as empty)."""
    import sqlglot
    from sqlglot import exp

    try:
        statements = sqlglot.parse(sql, read="duckdb")
    except sqlglot.errors.ParseError as exc:
        raise QueryError(f"SQL error: {str(exc).splitlines()[0]}") from exc
    for statement in statements:
        if statement is None or not isinstance(statement, exp.Query | exp.Describe):
            kind = type(statement).__name__.upper() if statement is not None else "EMPTY"
            raise QueryError(
                f"only read queries are allowed, not {kind}", hint=f"allowed: {', '.join(sorted(READ_ONLY_STATEMENTS))}"
            )
        if snapshots is not None and isinstance(statement, exp.Query):
            _pin(statement, snapshots, database)
    return ";\n".join(s.sql(dialect="athena") for s in statements if s is not None)


def _pin(query: Any, snapshots: Mapping[str, int | None], database: str) -> None:
    """Rewrite the lake's tables in `query` (not CTE names, not other databases' tables) as time travel."""
    from sqlglot import exp
    from sqlglot.optimizer.scope import traverse_scope

    tables = {
        id(source): source
        for scope in traverse_scope(query)
        for source in scope.sources.values()
        if isinstance(source, exp.Table) and source.name in snapshots and source.db in ("", database)
    }
    for table in tables.values():
        snapshot = snapshots[table.name]
        if snapshot is not None:
            table.set("version", exp.Version(this="VERSION", kind="AS OF", expression=exp.Literal.number(snapshot)))
            continue
        alias = table.alias_or_name
        bare = table.copy()
        bare.set("alias", None)
        table.replace(exp.select("*").from_(bare).where(exp.false()).subquery(alias))


def run_athena(
    sql: str,
    *,
    database: str,
    workgroup: str,
    output: str,
    client: Any = None,
    timeout_s: float = 300.0,
    sleep: Any = time.sleep,
    snapshots: Mapping[str, int | None] | None = None,
) -> QueryResult:
    """Submit, wait for, and page through one Athena query (its tables at `snapshots`: `to_athena`)."""
    import boto3

    from ..lake.s3 import aws_endpoint

    athena = client or boto3.client("athena", endpoint_url=aws_endpoint())
    started = athena.start_query_execution(
        QueryString=to_athena(sql, snapshots, database),
        QueryExecutionContext={"Database": database},
        WorkGroup=workgroup,
        ResultConfiguration={"OutputLocation": output},
    )
    query_id = started["QueryExecutionId"]
    deadline = time.monotonic() + timeout_s
    while True:
        status = athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]["Status"]
        state = status["State"]
        if state == "SUCCEEDED":
            break
        if state in ("FAILED", "CANCELLED"):
            raise QueryError(f"Athena query {query_id} {state.lower()}: {status.get('StateChangeReason', '')}")
        if time.monotonic() > deadline:
            athena.stop_query_execution(QueryExecutionId=query_id)
            raise QueryError(f"Athena query {query_id} took longer than {timeout_s:.0f}s and was stopped")
        sleep(POLL_S)
    columns: list[str] = []
    rows: list[tuple[Any, ...]] = []
    token = None
    first = True
    while True:
        kwargs = {"QueryExecutionId": query_id, **({"NextToken": token} if token else {})}
        page = athena.get_query_results(**kwargs)
        if not columns:
            columns = [c["Name"] for c in page["ResultSet"]["ResultSetMetadata"]["ColumnInfo"]]
        data = page["ResultSet"]["Rows"]
        if first and data and [d.get("VarCharValue") for d in data[0]["Data"]] == columns:
            data = data[1:]  # the first row of the first page repeats the header
        first = False
        rows += [tuple(d.get("VarCharValue") for d in row["Data"]) for row in data]
        token = page.get("NextToken")
        if not token:
            return QueryResult(columns, rows)
