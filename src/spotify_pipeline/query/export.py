"""`spotify-pipeline export`: a table's current rows to a Parquet, CSV or JSON-lines file (written atomically),
or to stdout. CSV and JSON lines use the dialect `query` prints (query.csv_cell, query.plain_value)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError, LakeError
from ..tables.catalog import Catalog
from ..tables.files import sql_string
from .engine import QueryEngine, write_csv, write_json_lines

STDOUT = Path("-")
BATCH_ROWS = 50_000
# Parquet: written by DuckDB to our own temporary name and renamed (DuckDB's own temporary file would be
# outside the sandbox).
PARQUET = "(FORMAT parquet, USE_TMP_FILE false)"


def export_table(catalog: Catalog, table: str, fmt: str, out: Path) -> int:
    """Write `table` to `out` (`-`: stdout); returns the number of rows. The engine's sandbox may write only
    the one temporary file."""
    if out == STDOUT:
        with tempfile.TemporaryDirectory(prefix="spotify-export-") as folder:
            tmp = Path(folder) / f"export.{fmt}"
            rows = export_table(catalog, table, fmt, tmp)
            with tmp.open("rb") as src:
                sys.stdout.flush()
                shutil.copyfileobj(src, sys.stdout.buffer)
                sys.stdout.buffer.flush()
            return rows
    tmp = out.with_name(f".{out.name}.tmp")
    with QueryEngine(catalog, writable=[str(tmp.absolute())]) as engine:
        if table not in engine.tables:
            raise InputError(f"no table named {table!r}", hint=f"tables: {', '.join(engine.tables)}")
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            if fmt == "parquet":
                path = sql_string(str(tmp.absolute()))  # COPY writes the literal path: not escaped
                engine.con.execute(f"COPY (SELECT * FROM {table}) TO {path} {PARQUET}")
                rows = int(engine.con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])
            else:
                cursor = engine.con.execute(f"SELECT * FROM {table}")
                columns = [d[0] for d in cursor.description or []]
                write = write_csv if fmt == "csv" else write_json_lines
                with tmp.open("w", encoding="utf-8", newline="") as handle:
                    rows = write(handle, columns, _batches(cursor))
            os.replace(tmp, out)
        except OSError as exc:
            raise LakeError(f"cannot write {out}: {exc.strerror}", hint="choose another --out path") from exc
        finally:
            tmp.unlink(missing_ok=True)
    return rows


def _batches(cursor: Any) -> Iterator[Sequence[Sequence[Any]]]:
    while batch := cursor.fetchmany(BATCH_ROWS):
        yield batch
