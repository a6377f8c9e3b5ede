"""Table history retention: expire table snapshots replaced more than a number of days ago, then delete the
files that only those snapshots used.

Every transform commits a new snapshot of each table it publishes, and Iceberg keeps every earlier snapshot
for time travel and rollback, so without expiry the warehouse holds one full copy of the tables per run,
forever. The current snapshot is never expired, and the raw zone is never touched: any table can still be
rebuilt from it.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from ..errors import LakeError
from .catalog import Catalog

log = logging.getLogger(__name__)


@dataclass
class ExpiryResult:
    snapshots: int = 0  # snapshots expired, all tables
    files_deleted: int = 0  # data files, manifests and manifest lists no kept snapshot uses
    data_bytes_deleted: int = 0

    def __add__(self, other: ExpiryResult) -> ExpiryResult:
        return ExpiryResult(
            self.snapshots + other.snapshots,
            self.files_deleted + other.files_deleted,
            self.data_bytes_deleted + other.data_bytes_deleted,
        )


def expire_history(catalog: Catalog, keep_days: float, now: dt.datetime | None = None) -> ExpiryResult:
    """Expire every table's snapshots replaced more than `keep_days` ago (never a table's current one) and
    delete the files only they referenced. The expiry is committed before any file is deleted, so a
    crash in between leaves unreferenced files behind, never a snapshot whose files are gone."""
    result = ExpiryResult()
    if keep_days < 0 or not catalog.exists():
        return result
    cutoff_ms = int(((now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=keep_days)).timestamp() * 1000)
    for name in catalog.table_names():
        table = catalog.table(name, create=False)
        expired, kept = _plan(table.metadata.snapshots, table.current_snapshot(), cutoff_ms)
        if not expired:
            continue
        manifests: dict[str, Any] = {}
        old_files = _files(expired, table.io, manifests)
        unused = sorted(old_files.keys() - _files(kept, table.io, manifests).keys())
        try:
            table.maintenance.expire_snapshots().by_ids([s.snapshot_id for s in expired]).commit()
            for path in unused:
                if not catalog.owns(path):  # never delete outside the lake, whatever the metadata says
                    log.warning("table %s: not deleting %s, which is outside the lake", name, path)
                    continue
                try:
                    table.io.delete(path)
                except FileNotFoundError:
                    continue
                result.files_deleted += 1
                result.data_bytes_deleted += old_files[path]
        except OSError as exc:
            raise LakeError(
                f"cannot expire old snapshots of table {name}: {exc}",
                hint="the tables are intact; check the lake's permissions (unused files may be left behind)",
            ) from exc
        result.snapshots += len(expired)
        log.info("table %s: expired %d snapshots, deleted %d files", name, len(expired), len(unused))
    return result


def _plan(snapshots: list[Any], current: Any, cutoff_ms: int) -> tuple[list[Any], list[Any]]:
    """The snapshots to expire, and the kept snapshots whose files must be spared.

    A snapshot is history from the moment it was replaced (its child's commit), not from its own commit, so
    it is kept while it was current at any moment after the cutoff: time travel to any time within the
    retention finds the table as it was then, and a reader that opened the table just before a run
    committed keeps its files for the whole retention, however long the runs are apart (a daily run would
    otherwise delete the snapshot it just replaced, committed a day ago, under a reader still on it).

    Usually a table's snapshots form one line of ancestry (each the parent of the next), and a file or
    manifest, once dropped from that line, never comes back (pyiceberg names them by UUID). Then the oldest
    ancestors expire, up to the newest one replaced before the cutoff, and anything they share with a kept
    snapshot is in the oldest kept one: reading that one alone keeps each run's work proportional to what
    it expires, not to the whole retained history (hundreds of snapshots per table with hourly runs). After
    a rollback the history branches; then every kept snapshot is read."""
    if current is None:
        return [], []
    by_id = {s.snapshot_id: s for s in snapshots}
    line = [current]  # newest first
    while line[-1].parent_snapshot_id in by_id and len(line) <= len(snapshots):
        line.append(by_id[line[-1].parent_snapshot_id])
    if len(line) == len(snapshots):
        # line[i] was replaced when line[i - 1] was committed
        newest_old = next((i for i in range(1, len(line)) if line[i - 1].timestamp_ms < cutoff_ms), None)
        return ([], []) if newest_old is None else (line[newest_old:], [line[newest_old - 1]])
    replaced_at = {s.snapshot_id: s.timestamp_ms for s in snapshots}  # a head off the line: its own commit
    for child in sorted(snapshots, key=lambda s: -s.timestamp_ms):  # the earliest child's commit wins
        if child.parent_snapshot_id in replaced_at:
            replaced_at[child.parent_snapshot_id] = child.timestamp_ms
    expired = [s for s in snapshots if replaced_at[s.snapshot_id] < cutoff_ms and s.snapshot_id != current.snapshot_id]
    return expired, [s for s in snapshots if s not in expired]


def _files(snapshots: list[Any], io: Any, manifests: dict[str, Any]) -> dict[str, int]:
    """Every file the snapshots reference (manifest lists, manifests, live data files), with the data files'
    sizes (0 for metadata files). `manifests` caches each manifest's entries: snapshots share manifests."""
    files: dict[str, int] = {}
    for snapshot in snapshots:
        if snapshot.manifest_list:
            files[snapshot.manifest_list] = 0
        for manifest in snapshot.manifests(io):
            files[manifest.manifest_path] = 0
            if manifest.manifest_path not in manifests:
                manifests[manifest.manifest_path] = [
                    (e.data_file.file_path, e.data_file.file_size_in_bytes)
                    for e in manifest.fetch_manifest_entry(io, discard_deleted=True)
                ]
            files.update(manifests[manifest.manifest_path])
    return files
