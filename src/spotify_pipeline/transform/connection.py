"""The DuckDB connection the transform and every reader of the tables use (UTC, memory cap, spill folder), and
how a table's snapshot is exposed to it as a view over its Parquet files."""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

import duckdb
import pyarrow as pa

from ..config import parse_memory_limit
from ..tables.catalog import Catalog
from ..tables.contract import TABLES
from ..tables.files import TableFiles


def duckdb_size(value: str, name: str) -> str:
    """A DuckDB memory size such as `1500MB` or `2GiB`, normalized; anything else is a ConfigError naming
    `name`. One definition, in config.py, so settings refuse exactly what DuckDB would be refused."""
    return parse_memory_limit(value, name)


def spill_parent(catalog: Catalog) -> Path | None:
    """Where DuckDB may spill for this lake: its own `_state/` when local (same disk, same owner, nothing in
    the working directory); None (the system's temp folder) for an S3 lake."""
    return None if catalog.remote else Path(catalog.root) / "_state"


def connect(remote: bool = False, memory_limit: str = "", spill_under: Path | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection in UTC; with `remote`, able to read s3:// paths through an fsspec filesystem.
    DuckDB's memory is capped by SPOTIFY_PIPELINE_MEMORY_LIMIT, else by `memory_limit` when given.
    It spills into a folder of its own under `spill_under` (default: the system's temp folder; never the
    working directory, DuckDB's default), which DuckDB creates on the first spill and deletes on close."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    # Row order is never relied on, which lets DuckDB use less memory. A memory limit is opt-in (DuckDB's
    # default is 80% of RAM); with the raw zone read in batches, a 1M-item rebuild completes under 1.5 GB.
    if os.environ.get("SPOTIFY_PIPELINE_MEMORY_LIMIT"):
        limit = duckdb_size(os.environ["SPOTIFY_PIPELINE_MEMORY_LIMIT"], "SPOTIFY_PIPELINE_MEMORY_LIMIT")
        con.execute(f"SET memory_limit = '{limit}'")  # validated: digits and a unit, nothing to escape
    elif memory_limit:
        con.execute(f"SET memory_limit = '{duckdb_size(memory_limit, 'memory_limit')}'")
    con.execute("SET preserve_insertion_order = false")
    # Temp tables live for one transform: compressing them (DuckDB's default for bulk appends) cost a
    # third of a 1M-item rebuild for nothing (profiled; docs/BENCHMARKS.md).
    con.execute("SET force_compression = 'uncompressed'")
    # Nor is there anything to checkpoint: the database lives in memory for one transform, but DuckDB
    # still ran an automatic checkpoint every 16 MB of appends, 10% of a 1M-item rebuild (profiled).
    con.execute("SET checkpoint_threshold = '1TB'")
    con.execute("SET enable_progress_bar = false")  # our own console reports progress
    parent = Path(spill_under) if spill_under is not None else Path(tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    spill = parent / f"duckdb-spill-{os.getpid()}-{secrets.token_hex(4)}"
    con.execute(f"SET temp_directory = '{str(spill).replace(chr(39), chr(39) * 2)}'")
    if remote:
        from ..lake.s3 import s3_filesystem

        con.register_filesystem(s3_filesystem())
    return con


def register_table(
    con: duckdb.DuckDBPyConnection, catalog: Catalog, name: str, view: str, snapshot_id: int | None = None
) -> TableFiles:
    """Expose a table's current snapshot (or `snapshot_id`) to DuckDB as `view` (Parquet files read in
    place, minus the rows its delete files mark deleted); a table that does not exist yet, or has no rows,
    is an empty view with the contract's columns. Returns the files the view reads."""
    files = catalog.files(name, snapshot_id) if name in catalog.table_names() else TableFiles()
    if files.data:
        con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS {files.sql()}")
        return files
    schema = TABLES[name].schema if name in TABLES else catalog.table(name).schema().as_arrow()
    register_empty(con, view, schema)
    return files


def register_empty(con: duckdb.DuckDBPyConnection, view: str, schema: pa.Schema) -> None:
    con.register(f"_{view}_empty", schema.empty_table())
    con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM _{view}_empty")
