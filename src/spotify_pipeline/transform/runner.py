"""Run the transform: pick raw runs not yet processed, normalize them, merge, commit table by table."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from ..catalog import Catalog
from ..errors import LakeError
from ..lake.raw import RawZoneReader
from ..lake.storage import Storage
from ..tables import DATA_TABLES, TABLES
from .merge import merge_sql
from .normalize import build_batch

log = logging.getLogger(__name__)


@dataclass
class TransformResult:
    raw_runs: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)  # rows per table after the merge
    batch_rows: dict[str, int] = field(default_factory=dict)  # rows per table in this batch
    item_types: dict[str, int] = field(default_factory=dict)  # playlist positions by kind, this batch
    rebuilt: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "raw_runs": self.raw_runs,
            "rows": self.rows,
            "batch_rows": self.batch_rows,
            "item_types": self.item_types,
            "rebuilt": self.rebuilt,
        }


def connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


def register_table(con: duckdb.DuckDBPyConnection, catalog: Catalog, name: str, view: str) -> None:
    """Expose a table's current snapshot to DuckDB as `view` (Parquet files read in place)."""
    files = catalog.data_files(name) if name in catalog.table_names() else []
    if files:
        file_list = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
        con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM read_parquet({file_list})")
    else:
        con.register(f"_{view}_empty", TABLES[name].schema.empty_table())
        con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM _{view}_empty")


def transform(storage: Storage, catalog: Catalog, *, rebuild: bool = False, by_run_id: str = "") -> TransformResult:
    """Bring every table up to date with the raw zone. `rebuild` recreates every table from raw alone."""
    reader = RawZoneReader(storage)
    manifests = reader.manifests()
    result = TransformResult(rebuilt=rebuild)
    if rebuild:
        catalog.drop_all()
    processed = set() if rebuild else _processed_runs(catalog)
    todo = [m for m in manifests if m["run_id"] not in processed]
    if not todo:
        result.rows = table_row_counts(catalog)
        return result

    files: dict[str, list[str]] = {}
    complete: list[dict[str, Any]] = []
    for manifest in todo:
        for entry in manifest["files"]:
            path = storage.local_path(entry["key"])
            if path is None or not Path(path).exists():
                raise LakeError(
                    f"raw file {entry['key']} listed in run {manifest['run_id']} is missing",
                    hint="restore it; the raw zone is the source of every table",
                )
            files.setdefault(entry["entity"], []).append(str(path))
        for playlist_id, outcome in (manifest.get("playlists") or {}).items():
            if outcome.get("status") == "complete":
                complete.append(
                    {
                        "run_id": manifest["run_id"],
                        "playlist_id": playlist_id,
                        "snapshot_id": outcome.get("snapshot_id"),
                    }
                )

    con = connect()
    try:
        con.register(
            "_complete",
            pa.Table.from_pylist(
                complete,
                schema=pa.schema([("run_id", pa.string()), ("playlist_id", pa.string()), ("snapshot_id", pa.string())]),
            ),
        )
        con.execute("CREATE TEMP TABLE complete AS SELECT * FROM _complete")
        try:
            build_batch(con, files)
        except duckdb.Error as exc:
            raise LakeError(
                f"cannot read the raw zone: {str(exc).splitlines()[0]}",
                hint="a raw file may be corrupted; `spotify-pipeline check` names it",
            ) from exc
        result.item_types = dict(con.execute("SELECT item_type, count(*) FROM b_playlist_songs GROUP BY 1").fetchall())
        for name in DATA_TABLES:
            result.batch_rows[name] = con.execute(f"SELECT count(*) FROM b_{name}").fetchall()[0][0]
            register_table(con, catalog, name, f"old_{name}")
            merged = con.sql(merge_sql(name)).to_arrow_table()
            catalog.overwrite(name, merged)
            result.rows[name] = merged.num_rows
        now = dt.datetime.now(dt.UTC)
        catalog.append(
            "processed_raw_runs",
            pa.Table.from_pylist(
                [{"raw_run_id": m["run_id"], "processed_at": now, "by_run_id": by_run_id} for m in todo],
                schema=TABLES["processed_raw_runs"].schema,
            ),
        )
    finally:
        con.close()
    result.raw_runs = [m["run_id"] for m in todo]
    return result


def _processed_runs(catalog: Catalog) -> set[str]:
    if "processed_raw_runs" not in catalog.table_names():
        return set()
    return set(catalog.read("processed_raw_runs").column("raw_run_id").to_pylist())


def table_row_counts(catalog: Catalog) -> dict[str, int]:
    counts = {}
    for name in catalog.table_names():
        snapshot = catalog.table(name).current_snapshot()
        counts[name] = int(snapshot.summary["total-records"]) if snapshot and snapshot.summary else 0
    return counts
