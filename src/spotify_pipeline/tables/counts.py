"""Rows a table snapshot reads, recorded in its summary so that counting them reads no delete file.

A snapshot's summary has Iceberg's `total-records` (every data file's records) and `total-position-deletes`
(every delete file's positions), but their difference is not the rows a reader sees once a delete file
outlives a data file it marked (a replace drops or rewrites the file, compaction folds it: the positions
in it count no more). Counting exactly then means planning the snapshot's files and reading every delete
file: a transform counts every table when it opens the lake (`open.snapshots`), and after a week of runs
the delete files it read were most of that step's time (docs/BENCHMARKS.md, "A lake after a week").

So every commit of ours that leaves rows marked deleted (a keyed replace: replace.py; a compaction:
maintenance.py) records the live rows it leaves under `LIVE_RECORDS`, computed from its parent's count
and what it changed; a snapshot without deletes is counted by its summary's records. A snapshot without
the key (written before it existed, or by pyiceberg's own append, which carries no custom key over) is
counted from its files (`live_records`), and the next replace records it again.
"""

from __future__ import annotations

from typing import Any

from .deletes import deleted_positions

LIVE_RECORDS = "spotify-pipeline.live-records"  # a custom summary key: other engines ignore it


def summary_live_records(snapshot: Any) -> int | None:
    """The rows `snapshot` reads, from its summary alone; None when only its files can tell."""
    summary = snapshot.summary
    if summary is None:
        return None
    if not int(summary.get("total-position-deletes") or 0):
        return int(summary.get("total-records") or 0)
    recorded = summary.get(LIVE_RECORDS)
    return None if recorded is None else int(recorded)


def live_records(catalog: Any, name: str, snapshot: Any) -> int:
    """The rows `snapshot` of table `name` reads: from its summary, else its data files' records less the
    positions its delete files mark in live data files (the files `Catalog.files` planned, which the
    transform's views read too)."""
    recorded = summary_live_records(snapshot)
    if recorded is not None:
        return recorded
    files = catalog.files(name, snapshot.snapshot_id)
    deleted = deleted_positions(catalog.table(name).io, files.deletes, files.recorded)
    return int(sum(files.records) - sum(deleted.values()))


def summary_properties(live: int | None) -> dict[str, str]:
    """What a commit adds to its snapshot's summary when it leaves `live` rows (None: unknown, nothing)."""
    return {} if live is None else {LIVE_RECORDS: str(live)}
