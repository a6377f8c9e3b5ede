"""What never showing half a publish costs a reader (query/consistent.py), on a lake made by `bench.generate`.

Per dashboard request: `change_stamp` (one SQLite read of catalog.db, one stat of the journal) against the
catalog.db stat it replaced. Per (re)open: `consistent_snapshots` on a fresh Catalog, with no publish journal
and with one (a publish under way), and the dashboard worker's whole open (`QueryEngine(in_memory=True)`)
at the current snapshots as before and at the consistent ones now (a raw zone with no tables yet is
transformed first). Medians of `--repeat` rounds, interleaved;
ratios from one run.

    python -m bench.generate --items 100000 --lake /tmp/lake && python -m bench.consistent_open --lake /tmp/lake
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from spotify_pipeline.lake.layout import CATALOG_FILE
from spotify_pipeline.lake.storage import LocalStorage
from spotify_pipeline.query.consistent import change_stamp, consistent_snapshots
from spotify_pipeline.query.engine import QueryEngine
from spotify_pipeline.tables.catalog import Catalog
from spotify_pipeline.transform import transform
from spotify_pipeline.transform.journal import PUBLISHED_TABLES, PublishJournal, clear_journal, write_journal


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
    snapshots = consistent_snapshots(Catalog(root))
    before = {name: snapshots.get(name) for name in PUBLISHED_TABLES}
    samples: dict[str, list[float]] = {
        k: [] for k in ("stat", "stamp", "snapshots", "snapshots_journal", "open_current", "open_consistent")
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
                "open_current_s": round(median["open_current"], 3),
                "open_consistent_s": round(median["open_consistent"], 3),
                "open_ratio": round(median["open_consistent"] / median["open_current"], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
