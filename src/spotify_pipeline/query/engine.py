"""SQL over the current snapshot of every table, by name, read-only, in a DuckDB sandbox.

The SQL a user gives (`query`, the dashboard's `/api/query`) is treated as hostile:

- parsed first: exactly one statement, a SELECT or an EXPLAIN [ANALYZE] of a SELECT; anything else
  (COPY, ATTACH, SET, PRAGMA, CREATE, INSTALL, CALL, EXPORT, several statements) is refused unrun;
- run in a connection that reaches no file but the tables' own Parquet files: `allowed_paths` lists
  exactly those (none at all once the tables are loaded into memory), `enable_external_access` is off,
  extensions are neither installed nor loaded automatically, Python objects are not scanned, and the
  configuration is locked, so no statement can undo any of it;
- bounded: an optional time limit interrupts the query, and DuckDB's memory limit is set and locked.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import decimal
import io
import json
import math
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

import duckdb

from ..errors import LakeError, QueryError
from ..tables.catalog import Catalog
from ..tables.contract import TABLES
from ..tables.files import TableFiles, glob_escaped, sql_string
from ..transform.connection import connect, duckdb_size, register_empty, register_table, spill_parent

READ_ONLY_STATEMENTS = {"SELECT", "EXPLAIN"}  # EXPLAIN [ANALYZE] only of a SELECT
READ_ONLY_HINT = "tables change only through `spotify-pipeline run`/`transform`; use one SELECT"


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool = False  # more rows than `max_rows` were produced; only the first are here


class QueryEngine:
    """A sandboxed DuckDB connection where every published table is queryable by its name.

    By default the names are views over the current snapshot's Parquet files (nothing is read until a
    query needs it: right for one query). With `in_memory`, the tables are loaded into DuckDB once, which
    makes every following query faster: right for the dashboard and the HTML report, which run many; the
    connection then reaches no file at all.

    `timeout` (seconds) interrupts a query that runs longer; `memory_limit` is a DuckDB size such as
    `2GB` (default: SPOTIFY_PIPELINE_MEMORY_LIMIT, else DuckDB's own, 80% of RAM). `writable` names files
    the connection may also write: only `export` uses it, with SQL of its own. `snapshots` opens each table
    at the snapshot id it names instead of the current one (the dashboard: query/consistent.py).
    """

    def __init__(
        self,
        catalog: Catalog,
        *,
        in_memory: bool = False,
        timeout: float | None = None,
        memory_limit: str | None = None,
        writable: Sequence[str] = (),
        snapshots: Mapping[str, int | None] | None = None,
    ) -> None:
        if not catalog.exists() or not catalog.table_names():
            raise LakeError(  # a missing or empty lake: exit 6, like every other lake that cannot be read
                f"no tables in the lake at {catalog.location}",
                hint="run `spotify-pipeline run` (or `spotify-pipeline demo`) first",
            )
        limit = duckdb_size(memory_limit, "the memory limit") if memory_limit else None
        self.catalog = catalog
        self.timeout = timeout
        self.con = connect(remote=catalog.remote, spill_under=spill_parent(catalog))
        # Every table of the contract is queryable, even one a lake made by an older version lacks (empty).
        self.tables = sorted(set(catalog.table_names()) | set(TABLES))
        readable: list[str] = []
        for name in self.tables:
            if in_memory:
                self._register(name, f"_{name}_files", snapshots)
                self.con.execute(f"CREATE TEMP TABLE {name} AS SELECT * FROM _{name}_files")
                self.con.execute(f"DROP VIEW _{name}_files")
            else:
                readable += self._register(name, name, snapshots).readable()
        self._lock_down(readable, list(writable), limit)

    def _register(self, name: str, view: str, snapshots: Mapping[str, int | None] | None) -> TableFiles:
        """The table at its current snapshot, or at `snapshots[name]`: given, a table it names no snapshot
        of (None, or not there: made since) is empty, as it was at those snapshots."""
        if snapshots is None:
            return register_table(self.con, self.catalog, name, view)
        snapshot_id = snapshots.get(name)
        if snapshot_id is not None:
            return register_table(self.con, self.catalog, name, view, snapshot_id)
        schema = TABLES[name].schema if name in TABLES else self.catalog.table(name).schema().as_arrow()
        register_empty(self.con, view, schema)
        return TableFiles()

    def _lock_down(self, readable: list[str], writable: list[str], memory_limit: str | None) -> None:
        """From here on the connection reaches only `readable` + `writable`, and nothing can change that."""
        paths = sorted({variant for path in readable + writable for variant in _path_variants(path)})
        con = self.con
        con.execute(f"SET allowed_paths = [{', '.join(sql_string(p) for p in paths)}]")
        con.execute("SET allowed_directories = []")
        con.execute("SET enable_external_access = false")
        con.execute("SET autoinstall_known_extensions = false")
        con.execute("SET autoload_known_extensions = false")
        con.execute("SET python_enable_replacements = false")
        if memory_limit:
            con.execute(f"SET memory_limit = '{memory_limit}'")  # validated by duckdb_size
        con.execute("SET lock_configuration = true")

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> QueryEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def execute(
        self,
        sql: str,
        params: Sequence[Any] | dict[str, Any] | None = None,
        *,
        max_rows: int | None = None,
    ) -> QueryResult:
        """Run one read-only statement; with `max_rows`, keep only the first rows (`truncated` says so)."""
        self.check_read_only(sql)
        done = threading.Event()
        timed_out = threading.Event()

        def interrupt() -> None:
            if not done.is_set():
                timed_out.set()
                self.con.interrupt()

        timer = threading.Timer(self.timeout, interrupt) if self.timeout else None
        if timer:
            timer.daemon = True
            timer.start()
        try:
            cursor = self.con.execute(sql, params) if params else self.con.execute(sql)
            columns = [d[0] for d in cursor.description or []]
            if max_rows is None:
                return QueryResult(columns, cursor.fetchall())
            rows = cursor.fetchmany(max_rows + 1)
            return QueryResult(columns, rows[:max_rows], truncated=len(rows) > max_rows)
        except duckdb.Error as exc:
            if timed_out.is_set():
                raise QueryError(
                    f"the query took longer than {self.timeout:g} s and was stopped",
                    hint="narrow it (a WHERE, a LIMIT, fewer joins) or allow more time with --timeout",
                ) from exc
            raise QueryError(f"SQL error: {_first_line(exc)}", hint=f"tables: {', '.join(self.tables)}") from exc
        finally:
            done.set()
            if timer:
                timer.cancel()

    def check_read_only(self, sql: str) -> None:
        """Refuse, unrun, anything but one SELECT or one EXPLAIN [ANALYZE] of a SELECT."""
        statements = self._parse(sql)
        if not statements:
            raise QueryError("empty query", hint='pass a SELECT statement, e.g. "SELECT count(*) FROM songs"')
        if len(statements) > 1:
            raise QueryError(f"one statement at a time, not {len(statements)}", hint=READ_ONLY_HINT)
        kind = statements[0].type.name
        if kind == "EXPLAIN":
            explained = self._explained_kind(statements[0].query)
            if explained != "SELECT":
                raise QueryError(f"only read queries are allowed, not EXPLAIN of {explained}", hint=READ_ONLY_HINT)
        elif kind != "SELECT":
            raise QueryError(f"only read queries are allowed, not {kind}", hint=READ_ONLY_HINT)

    def _parse(self, sql: str) -> list[Any]:
        try:
            return list(self.con.extract_statements(sql))
        except duckdb.Error as exc:
            raise QueryError(f"SQL error: {_first_line(exc)}") from exc

    def _explained_kind(self, sql: str) -> str:
        """The type of the statement an EXPLAIN wraps: `EXPLAIN [ANALYZE] [(options)] <statement>`.

        DuckDB's tokenizer finds where the wrapped statement may start (comments skipped); the first of
        those places where the rest parses as one statement gives its type. Anything else is UNKNOWN,
        which is refused."""
        tokens = [(pos, sql[pos:end].strip()) for (pos, kind), end in _token_spans(sql) if kind.name != "comment"]
        if not tokens or tokens[0][1].upper() != "EXPLAIN":
            return "UNKNOWN"
        starts, i = [], 1
        if i < len(tokens):
            starts.append(tokens[i][0])
            if tokens[i][1].upper() == "ANALYZE":
                i += 1
                if i < len(tokens):
                    starts.append(tokens[i][0])
            if i < len(tokens) and tokens[i][1] == "(":
                depth = 0
                for j in range(i, len(tokens)):
                    depth += tokens[j][1].count("(") - tokens[j][1].count(")")
                    if depth == 0:
                        if j + 1 < len(tokens):
                            starts.append(tokens[j + 1][0])
                        break
        for start in starts:
            try:
                inner = list(self.con.extract_statements(sql[start:]))
            except duckdb.Error:
                continue
            if len(inner) == 1:
                return str(inner[0].type.name)
            return "UNKNOWN"
        return "UNKNOWN"


def _token_spans(sql: str) -> list[tuple[Any, int]]:
    """DuckDB's tokens of `sql`, each with the offset where it ends (where the next one starts)."""
    tokens = duckdb.tokenize(sql)
    return [(token, tokens[i + 1][0] if i + 1 < len(tokens) else len(sql)) for i, token in enumerate(tokens)]


def _path_variants(path: str) -> set[str]:
    """A table file as DuckDB may spell it when checking `allowed_paths`: as given, and for a file read
    through an fsspec filesystem (s3://), also as that filesystem normalizes it; each also glob-escaped,
    as the views name it (`sql_path`): DuckDB checks the pattern it is given and then the file it
    resolves to. Allowing a pattern opens nothing more: every file it resolves to is checked as well."""
    variants = {path}
    protocol, sep, rest = path.partition("://")
    if sep:
        variants |= {f"{protocol}://{rest.lstrip('/')}", f"{protocol}:///{rest.lstrip('/')}"}
    return variants | {glob_escaped(v) for v in variants}


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0]


def plain_value(value: Any) -> Any:
    """A value DuckDB returned, as JSON can hold it: dates and times ISO 8601 (an INTERVAL as a duration,
    `P1DT1H30M`), BLOBs base64, UUIDs and other objects as text, DECIMAL as a number, NaN and infinities
    as null, lists and structs/maps element by element (map keys as text)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, decimal.Decimal):
        return float(value) if value.is_finite() else None
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).isoformat()  # every instant in UTC, whatever the session's zone
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return _iso_duration(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [plain_value(v) for v in value]
    if isinstance(value, dict):
        return {str(plain_value(k)): plain_value(v) for k, v in value.items()}
    return str(value)


def _iso_duration(delta: dt.timedelta) -> str:
    sign = "-" if delta < dt.timedelta(0) else ""
    delta = abs(delta)
    hours, rest = divmod(delta.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    second_text = f"{seconds}.{delta.microseconds:06d}".rstrip("0").rstrip(".") if delta.microseconds else str(seconds)
    date_part = f"{delta.days}D" if delta.days else ""
    time_part = "".join(f"{n}{unit}" for n, unit in ((hours, "H"), (minutes, "M")) if n)
    time_part += f"{second_text}S" if seconds or delta.microseconds else ""
    if not date_part and not time_part:
        return "PT0S"
    return f"{sign}P{date_part}{'T' + time_part if time_part else ''}"


def result_rows(result: QueryResult) -> list[dict[str, Any]]:
    """Rows as JSON-ready objects (see `plain_value`)."""
    return [dict(zip(result.columns, map(plain_value, row), strict=True)) for row in result.rows]


def format_result(result: QueryResult, fmt: str, max_width: int = 48) -> str:
    """Render rows as an aligned text table, CSV, or a JSON array of objects."""
    if fmt == "json":
        return json.dumps(result_rows(result), ensure_ascii=False, indent=2, allow_nan=False)
    if fmt == "csv":
        out = io.StringIO()
        write_csv(out, result.columns, [result.rows])
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
        text = json.dumps(plain_value(value), ensure_ascii=False, allow_nan=False)
    else:
        plain = plain_value(value)
        text = "" if plain is None else str(plain)
    text = text.replace("\n", "\\n").replace("\t", " ")
    return text if len(text) <= max_width else text[: max_width - 1] + "…"


def csv_cell(value: Any) -> Any:
    """One CSV cell in the dialect `query` and `export` share: booleans `true`/`false`, NULL empty, times ISO
    8601 (instants in UTC), lists and structs as JSON, everything else as `plain_value`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple | dict):
        return json.dumps(plain_value(value), ensure_ascii=False, allow_nan=False)
    return plain_value(value)


def write_csv(out: IO[str], columns: Sequence[str], batches: Iterable[Sequence[Sequence[Any]]]) -> int:
    """Header and rows in the shared CSV dialect; returns the number of rows."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    count = 0
    for batch in batches:
        writer.writerows([[csv_cell(v) for v in row] for row in batch])
        count += len(batch)
    return count


def write_json_lines(out: IO[str], columns: Sequence[str], batches: Iterable[Sequence[Sequence[Any]]]) -> int:
    """One JSON object per row (`plain_value`, the same values as `--format json`); returns the row count."""
    count = 0
    for batch in batches:
        for row in batch:
            record = dict(zip(columns, map(plain_value, row), strict=True))
            out.write(json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n")
        count += len(batch)
    return count
