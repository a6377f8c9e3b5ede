"""What never showing half a publish costs a reader (query/consistent.py), on a lake made by `bench.generate`.

Per dashboard request: `change_stamp` (one SQLite read of catalog.db, one stat of the journal) against the
catalog.db stat it replaced. Per (re)open: `consistent_snapshots` on a fresh Catalog, with no publish journal
and with one (a publish under way; and a run's, whose last commit, its `pipeline_runs` line, is in: readers
walk back past it), and the dashboard worker's whole open (`QueryEngine(in_memory=True)`)
at the current snapshots as before and at the consistent ones now (a raw zone with no tables yet is
transformed first). Medians of `--repeat` rounds, interleaved;
ratios from one run.

    python -m bench.generate --items 100000 --lake /tmp/lake && python -m bench.consistent_open --lake /tmp/lake
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa

from spotify_pipeline.lake.layout import CATALOG_FILE
from spotify_pipeline.lake.storage import LocalStorage
from spotify_pipeline.query.consistent import change_stamp, consistent_snapshots
from spotify_pipeline.query.engine import QueryEngine
from spotify_pipeline.tables.catalog import Catalog
from spotify_pipeline.tables.contract import TABLES
from spotify_pipeline.transform import transform
from spotify_pipeline.transform.journal import (
    PUBLISHED_TABLES,
    RUN_LINE,
    RUNS_TABLE,
    PublishJournal,
    clear_journal,
    write_journal,
)


def timed(call: Callable[[], Any], times: int = 1) -> float:
    """Seconds per call, over `times` calls."""
    started = time.perf_counter()
    for _ in range(times):
        call()
    return (time.perf_counter() - started) / times


def open_current(root: Path) -> None:
    QueryEngine(Catalog(root), in_memory=True).close()


def open_consistent(root: Path) -> None:
    catalog = Catalog(root)
    QueryEngine(catalog, in_memory=True, snapshots=consistent_snapshots(catalog)).close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lake", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    root = args.lake.resolve()
    storage = LocalStorage(root)
    if not Catalog(root).exists():  # a raw zone as `bench.generate` leaves it: build the tables first
        transform(storage, Catalog(root))
    runs_before = _run_lines(Catalog(root))
    snapshots = consistent_snapshots(Catalog(root))
    before = {name: snapshots.get(name) for name in PUBLISHED_TABLES}
    samples: dict[str, list[float]] = {
        k: []
        for k in (
            "stat",
            "stamp",
            "snapshots",
            "snapshots_journal",
            "snapshots_journal_runs",
            "open_current",
            "open_consistent",
        )
    }
    for _ in range(args.repeat):
        samples["stat"].append(timed(lambda: (root / CATALOG_FILE).stat().st_mtime, 200))
        samples["stamp"].append(timed(lambda: change_stamp(root), 200))
        samples["snapshots"].append(timed(lambda: consistent_snapshots(Catalog(root))))
        write_journal(storage, PublishJournal(snapshots, [], before=before))
        try:
            samples["snapshots_journal"].append(timed(lambda: consistent_snapshots(Catalog(root))))
        finally:
            clear_journal(storage)
        write_journal(storage, PublishJournal(snapshots, [], before={**before, RUNS_TABLE: runs_before}))
        try:
            samples["snapshots_journal_runs"].append(timed(lambda: consistent_snapshots(Catalog(root))))
        finally:
            clear_journal(storage)
        samples["open_current"].append(timed(lambda: open_current(root)))
        samples["open_consistent"].append(timed(lambda: open_consistent(root)))
    median = {k: statistics.median(v) for k, v in samples.items()}
    print(
        json.dumps(
            {
                "tables": len(snapshots),
                "repeat": args.repeat,
                "stat_ms": round(median["stat"] * 1000, 4),
                "stamp_ms": round(median["stamp"] * 1000, 3),
                "snapshots_ms": round(median["snapshots"] * 1000, 1),
                "snapshots_journal_ms": round(median["snapshots_journal"] * 1000, 1),
                "snapshots_journal_runs_ms": round(median["snapshots_journal_runs"] * 1000, 1),
                "open_current_s": round(median["open_current"], 3),
                "open_consistent_s": round(median["open_consistent"], 3),
                "open_ratio": round(median["open_consistent"] / median["open_current"], 2),
            }
        )
    )


def _run_lines(catalog: Catalog) -> int | None:
    """A finished run's line in `pipeline_runs`, then a publishing run's (marked, as pipeline.py commits it);
    the snapshot before the marked one, which a run's journal records (once per lake: the bench's setup)."""
    current = catalog.table(RUNS_TABLE).current_snapshot() if RUNS_TABLE in catalog.table_names() else None
    if current is not None and current.summary is not None and current.summary.get(RUN_LINE):
        return current.parent_snapshot_id  # type: ignore[no-any-return]
    now = dt.datetime.now(dt.UTC)
    line = {"run_id": "bench", "started_at": now, "finished_at": now, "status": "succeeded"}
    rows = pa.Table.from_pylist([line], schema=TABLES[RUNS_TABLE].schema)
    catalog.append(RUNS_TABLE, rows)
    runs_before = catalog.snapshot_id(RUNS_TABLE)
    catalog.append(RUNS_TABLE, rows, {RUN_LINE: "bench"})
    return runs_before


if __name__ == "__main__":
    main()
