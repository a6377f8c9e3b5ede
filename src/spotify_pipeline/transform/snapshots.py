"""Where the tables stand: each table's current snapshot, rows per table, the raw runs already processed."""

from __future__ import annotations

from typing import Any

from ..tables.catalog import Catalog
from ..tables.deletes import deleted_positions


def processed_runs(catalog: Catalog, snapshot_id: int | None) -> set[str]:
    """Raw runs recorded in `processed_raw_runs` at `snapshot_id` (None: the table had no rows yet)."""
    if snapshot_id is None:
        return set()
    scan = catalog.table("processed_raw_runs").scan(snapshot_id=snapshot_id)
    return set(scan.to_arrow().column("raw_run_id").to_pylist())


def current_snapshots(catalog: Catalog) -> dict[str, int | None]:
    """Each table's current snapshot id (None for a table with no snapshot yet)."""
    return {name: catalog.snapshot_id(name) for name in catalog.table_names()}


def table_row_counts(catalog: Catalog, snapshots: dict[str, int | None] | None = None) -> dict[str, int]:
    """Rows per table now, or at the given snapshots (a table with no snapshot counts 0)."""
    counts = {}
    for name, snapshot_id in (current_snapshots(catalog) if snapshots is None else snapshots).items():
        snapshot = None if snapshot_id is None else catalog.table(name).snapshot_by_id(snapshot_id)
        counts[name] = _live_records(catalog, name, snapshot) if snapshot and snapshot.summary else 0
    return counts


def _live_records(catalog: Catalog, name: str, snapshot: Any) -> int:
    """Rows a snapshot reads: its data files' records, less the rows its position delete files mark deleted
    in them (merge-on-read, tables/replace.py). Without delete files, the summary's count (no planning);
    with some, the delete files' `file_path` column is read, counting only positions in live data files (a
    delete file outlives a data file it marked when a later commit drops or rewrites that file). The files
    are the ones `Catalog.files` planned for the snapshot, which the transform's views read too."""
    if not int(snapshot.summary.get("total-position-deletes") or 0):
        return int(snapshot.summary["total-records"])
    files = catalog.files(name, snapshot.snapshot_id)
    deleted = deleted_positions(catalog.table(name).io, files.deletes, files.recorded)
    return sum(files.records) - sum(deleted.values())
