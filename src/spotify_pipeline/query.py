"""SQL over the current snapshot of every table, by name, read-only (DuckDB reading the tables' Parquet)."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb

from .catalog import Catalog
from .errors import QueryError
from .tables import TABLES
from .transform.runner import connect, register_table

READ_ONLY_STATEMENTS = {"SELECT", "EXPLAIN"}


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]


class QueryEngine:
    """A DuckDB connection where every published table is queryable by its name.

    By default the names are views over the current snapshot's Parquet files (nothing is read until a
    query needs it: right for one query). With `in_memory`, the tables are loaded into DuckDB once, which
    makes every following query faster: right for the dashboard and the HTML report, which run many.
    """

    def __init__(self, catalog: Catalog, *, in_memory: bool = False) -> None:
        if not catalog.exists() or not catalog.table_names():
            raise QueryError(
                f"no tables in the lake at {catalog.location}",
                hint="run `spotify-pipeline run` (or `spotify-pipeline demo`) first",
            )
        self.catalog = catalog
        self.con = connect(remote=catalog.remote)
        # Every table of the contract is queryable, even one a lake made by an older version lacks (empty).
        self.tables = sorted(set(catalog.table_names()) | set(TABLES))
        for name in self.tables:
            if in_memory:
                register_table(self.con, catalog, name, f"_{name}_files")
                self.con.execute(f"CREATE TEMP TABLE {name} AS SELECT * FROM _{name}_files")
            else:
                register_table(self.con, catalog, name, name)

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> QueryEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> QueryResult:
        try:
            statements = self.con.extract_statements(sql)
        except duckdb.Error as exc:
            raise QueryError(f"SQL error: {_first_line(exc)}") from exc
        if not statements:
            raise QueryError("empty query", hint='pass a SELECT statement, e.g. "SELECT count(*) FROM songs"')
        for statement in statements:
            kind = statement.type.name
            if kind not in READ_ONLY_STATEMENTS:
                raise QueryError(
                    f"only read queries are allowed, not {kind}",
                    hint="tables change only through `spotify-pipeline run`/`transform`; use SELECT",
                )
        try:
            cursor = self.con.execute(sql, params) if params else self.con.execute(sql)
            columns = [d[0] for d in cursor.description or []]
            return QueryResult(columns, cursor.fetchall())
        except duckdb.Error as exc:
            raise QueryError(f"SQL error: {_first_line(exc)}", hint=f"tables: {', '.join(self.tables)}") from exc


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0]


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def format_result(result: QueryResult, fmt: str, max_width: int = 48) -> str:
    """Render rows as an aligned text table, CSV, or a JSON array of objects."""
    if fmt == "json":
        return json.dumps(
            [dict(zip(result.columns, map(_plain, row), strict=True)) for row in result.rows],
            ensure_ascii=False,
            indent=2,
        )
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(result.columns)
        writer.writerows([[_csv_cell(v) for v in row] for row in result.rows])
        return out.getvalue().rstrip("\n")
    cells = [[_cell(v, max_width) for v in row] for row in result.rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(result.columns)]
    numeric = [
        all(isinstance(row[i], int | float | decimal.Decimal) or row[i] is None for row in result.rows)
        for i in range(len(result.columns))
    ]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True))

    out_lines = [line(result.columns), "  ".join("-" * w for w in widths)]
    out_lines += [line(r) for r in cells]
    out_lines.append(f"({len(result.rows)} row{'s' if len(result.rows) != 1 else ''})")
    return "\n".join(s.rstrip() for s in out_lines)


def _cell(value: Any, max_width: int) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        text = f"{value:.4g}" if abs(value) < 1e6 else f"{value:.0f}"
    elif isinstance(value, list | dict):
        text = json.dumps(_plain(value), ensure_ascii=False)
    else:
        text = str(_plain(value))
    text = text.replace("\n", "\\n").replace("\t", " ")
    return text if len(text) <= max_width else text[: max_width - 1] + "…"


def _csv_cell(value: Any) -> Any:
    if isinstance(value, list | dict):
        return json.dumps(_plain(value), ensure_ascii=False)
    return _plain(value)
