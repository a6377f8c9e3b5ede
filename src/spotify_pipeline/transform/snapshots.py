"""Where the tables stand: each table's current snapshot, rows per table, the raw runs already processed."""

from __future__ import annotations

from ..tables.catalog import Catalog
from ..tables.counts import live_records


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
        # From the summary, which our commits keep exact (tables/counts.py); else from the snapshot's files.
        counts[name] = live_records(catalog, name, snapshot) if snapshot and snapshot.summary else 0
    return counts
