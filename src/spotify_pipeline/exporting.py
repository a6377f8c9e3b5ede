"""`spotify-pipeline export`: a table's current rows to a Parquet, CSV or JSON-lines file (written atomically)."""

from __future__ import annotations

import os
from pathlib import Path

from .catalog import Catalog
from .errors import InputError, LakeError
from .query import QueryEngine

# Written to our own temporary name and renamed: DuckDB's own temporary file would be outside the sandbox.
FORMATS = {
    "parquet": "(FORMAT parquet, USE_TMP_FILE false)",
    "csv": "(FORMAT csv, HEADER true, USE_TMP_FILE false)",
    "json": "(FORMAT json, USE_TMP_FILE false)",
}


def export_table(catalog: Catalog, table: str, fmt: str, out: Path) -> int:
    """Write `table` to `out`; returns the number of rows. The engine's sandbox may write that one file."""
    tmp = out.with_name(f".{out.name}.tmp")
    with QueryEngine(catalog, writable=[str(tmp.absolute())]) as engine:
        if table not in engine.tables:
            raise InputError(f"no table named {table!r}", hint=f"tables: {', '.join(engine.tables)}")
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            path = str(tmp.absolute()).replace("'", "''")
            engine.con.execute(f"COPY (SELECT * FROM {table}) TO '{path}' {FORMATS[fmt]}")
            os.replace(tmp, out)
        except OSError as exc:
            raise LakeError(f"cannot write {out}: {exc.strerror}", hint="choose another --out path") from exc
        rows = engine.con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    return int(rows)
