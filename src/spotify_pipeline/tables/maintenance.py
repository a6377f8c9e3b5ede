"""Lake maintenance (`spotify-pipeline maintain`): compact small files, expire old snapshots, delete orphans.

Runs replace only the rows of the keys they change (transform/publish.py `_publish_changes`), so a table
gains a small file per run (the changed rows, appended) and its rewritten files shrink a little; and
every run leaves snapshots and the files only they use. Maintenance, under the lake lock (never beside a
transform's commit):

1. expiry: snapshots replaced longer ago than the retention (`table_history_days`) and the files only they used
   (retention.py), first, so that the lake bound below counts only what stays;
2. compaction (`CompactionPlan`): per table, what readers need whatever the bound (the data files more
   than `COMPACT_DELETED_SHARE` deleted by position delete files (replace.py) and, past `MERGE_FILES_PAST`,
   the small ones), and early, while the lake stays within `budget.LAKE_BOUND` of its tables, files past
   `budget.EARLY_DELETED_SHARE` deleted (most first) and files of more than two compaction units: rewritten
   together, their deletes applied, sorted by the table's cluster column, in files of a unit (~a tenth of
   the lake's table bytes, at most `PUBLISH_ROWS` rows: budget.py); the delete files no data file needs
   any more are dropped, the rest gathered into one past `MERGE_FILES_PAST`; one commit per table (none if
   nothing passes a bound), with the same rows, so readers see the old files or the new ones; then expiry
   again (with a retention shorter than the current snapshots' age, what compaction replaced goes now);
3. orphans: files under a table's folder in warehouse/ that no kept snapshot or metadata file references
   (left by a commit that died half-way, or by a dropped table), once older than `orphan_age`; on S3 the
   same under warehouse/<database>.db/<table>/, by LastModified, in DeleteObjects batches.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ..errors import LakeError
from ..lake.layout import WAREHOUSE_DIR
from ..lake.storage import Storage
from ..transform import publish
from ..transform.journal import read_journal
from . import budget, counts
from .budget import LakeBudget, unit_rows
from .catalog import Catalog, cluster_column
from .catalog_db import NAMESPACE
from .contract import TABLES
from .deletes import MERGE_MANIFESTS_PAST, count_deleted, read_positions, row_delta, write_position_deletes
from .retention import ExpiryResult, _files, expire_history

if TYPE_CHECKING:
    from ..lake.s3 import S3Object, S3Storage

log = logging.getLogger(__name__)
ORPHAN_AGE = dt.timedelta(hours=1)  # younger files may belong to a commit in progress elsewhere
COMPACT_MAX_BYTES = 256 * 1024 * 1024  # small files rewritten together at most (memory bound)
# A data file is rewritten once more than this share of its rows is deleted, whatever the lake bound (earlier
# within it: budget.py). Under it, rewriting writes the
# whole file to drop a few rows and, while the retention keeps a snapshot that reads the old copy, keeps
# both: over a retention of W runs in which a share r of a table's rows is replaced per run, compaction at
# share d keeps ~W*r/d of the table in old copies and ~d/2 in deleted rows, least near d = sqrt(2*W*r)
# (~0.6 for 6 hourly runs of 1% of the playlists, r ~ 3% for songs); readers pay for the rows marked
# deleted (docs/BENCHMARKS.md, "A week within 1.5x", and "When to rewrite instead of marking").
COMPACT_DELETED_SHARE = 0.5
# Small files (each run appends one per table) are merged once there are more than this many, and delete
# files gathered into one likewise: so a pass after every run rewrites a few small files every few runs,
# not the run's new rows every time.
MERGE_FILES_PAST = 8
# Past this many small files a table's are merged whatever the lake bound (budget.py); from
# `MERGE_FILES_PAST` on, while the lake has room: merges of a few hundred KB every few runs were the rest of
# the peaks over 1.5x at 100k once the 50,000-row files were split.
MERGE_ALWAYS_PAST = 24
S3_DELETE_BATCH = 1000  # orphan keys per DeleteObjects request (S3's maximum)


@dataclass
class MaintenanceResult:
    tables_compacted: list[str] = field(default_factory=list)
    files_compacted: int = 0  # data files replaced by compaction
    delete_files_dropped: int = 0  # position delete files no data file needs any more
    files_written: int = 0  # data files it wrote
    bytes_written: int = 0
    expiry: ExpiryResult = field(default_factory=ExpiryResult)
    orphans_deleted: int = 0
    orphan_bytes_deleted: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "tables_compacted": self.tables_compacted,
            "files_compacted": self.files_compacted,
            "delete_files_dropped": self.delete_files_dropped,
            "files_written": self.files_written,
            "bytes_written": self.bytes_written,
            "snapshots_expired": self.expiry.snapshots,
            "expired_files_deleted": self.expiry.files_deleted,
            "expired_bytes_deleted": self.expiry.data_bytes_deleted,
            "orphans_deleted": self.orphans_deleted,
            "orphan_bytes_deleted": self.orphan_bytes_deleted,
            "seconds": round(self.seconds, 3),
        }


def maintain(
    storage: Storage,
    catalog: Catalog,
    keep_days: float,
    *,
    orphan_age: dt.timedelta = ORPHAN_AGE,
    now: dt.datetime | None = None,
) -> MaintenanceResult:
    """Expire, compact, expire again, remove orphans. Expiry first, so that the lake bound (budget.py)
    counts only the files that stay; again after compaction, so that with a retention shorter than the
    age of the current snapshots the files compaction replaced go in the same pass. The caller holds the
    lake lock. Nothing is done while a transform's publish is unfinished: the next transform redoes it
    from the snapshots its journal records, which must stay."""
    started = time.perf_counter()
    result = MaintenanceResult()
    if not catalog.exists():
        return result
    if read_journal(storage) is not None:
        raise LakeError(
            "a transform was interrupted while publishing; maintenance would expire the snapshots it is redone from",
            hint="run `spotify-pipeline transform` first, then `maintain`",
        )
    first = expire_history(catalog, keep_days, now=now)
    plans = [plan for name in catalog.table_names() if (plan := CompactionPlan.of(catalog, name)) is not None]
    tables = sum(plan.table_bytes for plan in plans)
    lake = LakeBudget(warehouse_data_bytes(storage, catalog), tables, budget.LAKE_BOUND)
    cutoff_ms = ((now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=max(keep_days, 0))).timestamp() * 1000
    for plan in plans:
        plan.classify(budget.UNIT_SHARE * tables, kept=keep_days < 0 or plan.committed_ms >= cutoff_ms)
        plan.charge_needed(lake)
    early = sorted(
        ((p, group) for p in plans for group in p.early), key=lambda pg: pg[0].priority(pg[1])
    )  # files past two units (while the lake is quiet), small files, then the most deleted first
    for owner, group in early:
        size, share = owner.size(group), owner.deleted_share(group)
        if owner.tasks and owner.size(owner.tasks) + size > COMPACT_MAX_BYTES:
            continue  # one commit reads its files into memory at once: the rest waits for the next pass
        bound = (budget.SPLIT_BOUND, budget.LAKE_BOUND, budget.DELETES_BOUND)[owner.priority(group)[0]]
        if lake.fits(size, share, kept=owner.kept, bound=bound):
            lake.charge(size, share, kept=owner.kept)
            owner.tasks.extend(group)
    for plan in plans:
        plan.commit(result)
    result.expiry = first + expire_history(catalog, keep_days, now=now)
    if catalog.remote:
        remove_s3_orphans(storage, catalog, orphan_age, result, now=now)
    else:
        remove_orphans(catalog, orphan_age, result, now=now)
    result.seconds = time.perf_counter() - started
    return result


def compact(catalog: Catalog, name: str, result: MaintenanceResult) -> None:
    """Rewrite what readers need of one table, whatever the lake bound (`CompactionPlan`), in
    `PUBLISH_ROWS`-row files: no early rewrites (those are `maintain`'s, within the bound)."""
    plan = CompactionPlan.of(catalog, name)
    if plan is not None:
        plan.classify(None, kept=True)
        plan.commit(result)


@dataclass
class CompactionPlan:
    """One table's compaction. Needed whatever the bound: the data files more than `COMPACT_DELETED_SHARE`
    of their rows deleted and, once there are more than `MERGE_FILES_PAST`, its small ones (under half a
    unit), rewritten together (their deletes applied, sorted by the cluster column) in files of a unit
    (budget.py), up to `COMPACT_MAX_BYTES`; the delete files no data file needs any more dropped, the rest
    gathered into one past `MERGE_FILES_PAST`; every file listed in one manifest per content. Early,
    within the lake bound (`maintain`): files past `budget.EARLY_DELETED_SHARE`, and files of more than
    two units. One commit, the same rows; none when there is nothing to do. A file under the shares keeps
    its deletes: rewriting it would write (and, while kept snapshots read the old copy, keep) the whole
    file for a few rows."""

    name: str
    table: Any
    planned: list[Any]
    live_deletes: list[Any]
    by_delete_file: list[pa.Table]
    deleted: dict[str, int]
    committed_ms: int
    table_bytes: int
    unit_rows: int = 0
    kept: bool = True
    needed: list[Any] = field(default_factory=list)
    early: list[list[Any]] = field(default_factory=list)  # each rewritten whole or not at all
    tasks: list[Any] = field(default_factory=list)

    @classmethod
    def of(cls, catalog: Catalog, name: str) -> CompactionPlan | None:
        table = catalog._writable(name)
        snapshot = table.current_snapshot()
        if snapshot is None:
            return None
        planned = list(table.scan().plan_files())
        live_deletes = _delete_files(table)
        by_delete_file = [read_positions(table.io, [d.file_path]) for d in live_deletes]
        positions = pa.concat_tables(by_delete_file) if by_delete_file else read_positions(table.io, [])
        size = sum(t.file.file_size_in_bytes for t in planned) + sum(d.file_size_in_bytes for d in live_deletes)
        return cls(
            name, table, planned, live_deletes, by_delete_file, count_deleted(positions), snapshot.timestamp_ms, size
        )

    def live_rows(self) -> int:
        """The rows the table reads: its data files' records less the positions deleted in them."""
        return sum(t.file.record_count - self.deleted.get(t.file.file_path, 0) for t in self.planned)

    def deleted_share(self, tasks: list[Any]) -> float:
        deleted = sum(self.deleted.get(t.file.file_path, 0) for t in tasks)
        return float(deleted / max(1, sum(t.file.record_count for t in tasks)))

    @staticmethod
    def size(tasks: list[Any]) -> int:
        return sum(t.file.file_size_in_bytes for t in tasks)

    def priority(self, tasks: list[Any]) -> tuple[int, float]:
        """Early rewrites in this order: a file of more than two units (one lump, cheapest while the lake
        holds few old copies and it few deleted rows), small files merged, then the most deleted first."""
        if len(tasks) == 1 and tasks[0].file.record_count > 2 * self.unit_rows:
            return (0, self.size(tasks))
        return (1, 0.0) if len(tasks) > 1 else (2, -self.deleted_share(tasks))

    def classify(self, unit_bytes: float | None, *, kept: bool) -> None:
        """Sort the files into needed and early ones, for compacted files of `unit_bytes` (None: of
        `PUBLISH_ROWS` rows, nothing early); `kept`: a kept snapshot reads the current files."""
        rows = sum(t.file.record_count for t in self.planned)
        data_bytes = sum(t.file.file_size_in_bytes for t in self.planned)
        self.kept = kept
        most = publish.PUBLISH_ROWS
        self.unit_rows = most if unit_bytes is None else unit_rows(unit_bytes, data_bytes, rows, most)
        heavy = [t for t in self.planned if self.deleted_share([t]) > COMPACT_DELETED_SHARE]
        small = [t for t in self.planned if t not in heavy and t.file.record_count < self.unit_rows // 2]
        small.sort(key=lambda t: t.file.file_size_in_bytes)
        early_small = small if unit_bytes is not None and MERGE_FILES_PAST < len(small) <= MERGE_ALWAYS_PAST else []
        if len(small) <= (MERGE_FILES_PAST if unit_bytes is None else MERGE_ALWAYS_PAST):
            small = []  # merged once there are enough (each run appends one): within the bound, or past 24
        total = 0
        for task in heavy + small:  # the files past the share, then the smallest first, up to the memory bound
            total += task.file.file_size_in_bytes
            if total > COMPACT_MAX_BYTES and self.needed:
                break
            self.needed.append(task)
        self.tasks = list(self.needed)
        if unit_bytes is None:
            return
        rest = [t for t in self.planned if t not in self.needed and t not in early_small]
        early = [t for t in rest if self.deleted_share([t]) > budget.EARLY_DELETED_SHARE]
        big = [t for t in rest if t not in early and t.file.record_count > 2 * self.unit_rows]
        self.early = [[t] for t in early + big] + ([early_small] if early_small else [])

    def charge_needed(self, lake: LakeBudget) -> None:
        for task in self.needed:
            lake.charge(task.file.file_size_in_bytes, self.deleted_share([task]), kept=self.kept)

    def commit(self, result: MaintenanceResult) -> None:
        """Rewrite `tasks` (one commit), or commit nothing when there is nothing to do."""
        import pyarrow.compute as pc
        from pyiceberg.expressions import AlwaysTrue
        from pyiceberg.io.pyarrow import ArrowScan, _dataframe_to_data_files

        table, tasks, name = self.table, self.tasks, self.name
        kept = {t.file.file_path for t in self.planned} - {t.file.file_path for t in tasks}
        # A delete file goes once no data file it names stays; the rest are gathered into one past
        # `MERGE_FILES_PAST` (holding only the positions in files left in place).
        needed = [not kept.isdisjoint(rows.column("file_path").to_pylist()) for rows in self.by_delete_file]
        gather = sum(needed) > MERGE_FILES_PAST
        dropped = [d for d, need in zip(self.live_deletes, needed, strict=True) if gather or not need]
        manifests = len(table.current_snapshot().manifests(table.io))
        if not tasks and not dropped and manifests <= MERGE_MANIFESTS_PAST:
            return
        rows = (
            ArrowScan(
                table_metadata=table.metadata, io=table.io, projected_schema=table.schema(), row_filter=AlwaysTrue()
            ).to_table(tasks=tasks)
            if tasks
            else table.schema().as_arrow().empty_table()
        )
        column = cluster_column(name) if name in TABLES else None
        if column in rows.column_names:
            rows = rows.take(pc.sort_indices(rows, [(column, "ascending")]))
        positions = pa.concat_tables(self.by_delete_file) if self.by_delete_file else read_positions(table.io, [])
        marked = positions.filter(pc.is_in(positions.column("file_path"), pa.array(sorted(kept), pa.string())))
        with table.transaction() as tx, row_delta(tx, merge_manifests=True) as rewrite:
            rewrite.snapshot_properties = counts.summary_properties(self.live_rows())  # the same rows
            counter = itertools.count()
            for removed in [t.file for t in tasks] + dropped:
                rewrite.delete_data_file(removed)
            if gather and marked.num_rows:
                rewrite.append_data_file(write_position_deletes(table, marked, rewrite.commit_uuid))
            for start in range(0, rows.num_rows, self.unit_rows):
                for data_file in _dataframe_to_data_files(
                    table_metadata=table.metadata,
                    df=rows.slice(start, self.unit_rows),
                    io=table.io,
                    write_uuid=rewrite.commit_uuid,
                    counter=counter,
                ):
                    rewrite.append_data_file(data_file)
                    result.files_written += 1
                    result.bytes_written += data_file.file_size_in_bytes
        result.files_compacted += len(tasks)
        result.delete_files_dropped += len(dropped)
        result.tables_compacted.append(name)
        log.info("table %s: compacted %d files, dropped %d delete files", name, len(tasks), len(dropped))


def _delete_files(table: Any) -> list[Any]:
    """The live delete files of a table's current snapshot."""
    from pyiceberg.manifest import ManifestContent

    return [
        entry.data_file
        for manifest in table.current_snapshot().manifests(table.io)
        if manifest.content == ManifestContent.DELETES
        for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True)
    ]


def warehouse_data_bytes(storage: Storage, catalog: Catalog) -> int:
    """Bytes of the data and delete files under the tables' folders, current or kept for older snapshots
    (orphans too; not the metadata folders): what the lake bound (budget.py) is about."""
    if catalog.remote:
        from ..lake.s3 import S3Storage

        if not isinstance(storage, S3Storage):
            raise LakeError(f"tables on S3 but the lake is not: {storage}", hint="open the lake by its s3:// URI")
        root = f"{WAREHOUSE_DIR}/{getattr(catalog, 'namespace', NAMESPACE)}.db/"
        return sum(o.size for o in storage.list_objects(root) if o.key[len(root) :].split("/")[1:2] != ["metadata"])
    folder = catalog.root / WAREHOUSE_DIR / NAMESPACE
    if not folder.is_dir():
        return 0
    files = (p for p in folder.rglob("*") if p.is_file() and p.relative_to(folder).parts[1:2] != ("metadata",))
    return sum(p.stat().st_size for p in files)


def referenced_files(catalog: Catalog, name: str) -> set[str]:
    """Every file a table's metadata references: its metadata files (current and logged), every kept
    snapshot's manifest list, manifests and data files."""
    table = catalog.table(name, create=False)
    paths = {table.metadata_location, *(entry.metadata_file for entry in table.metadata.metadata_log)}
    paths.update(_files(table.metadata.snapshots, table.io, {}))
    return {p.removeprefix("file://") for p in paths}


def remove_orphans(
    catalog: Catalog, orphan_age: dt.timedelta, result: MaintenanceResult, *, now: dt.datetime | None = None
) -> None:
    """Delete files in warehouse/<namespace>/<table>/ that no table references, older than `orphan_age`."""
    cutoff = (now or dt.datetime.now(dt.UTC)).timestamp() - orphan_age.total_seconds()
    tables = set(catalog.table_names())
    root = catalog.root / WAREHOUSE_DIR / NAMESPACE
    if not root.is_dir():
        return
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        name = folder.name
        keep = referenced_files(catalog, name) if name in tables else set()
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            if str(path) in keep or path.stat().st_mtime > cutoff:
                continue
            size = path.stat().st_size
            path.unlink()
            result.orphans_deleted += 1
            result.orphan_bytes_deleted += size
        _remove_empty_dirs(folder)


def remove_s3_orphans(
    storage: Storage,
    catalog: Catalog,
    orphan_age: dt.timedelta,
    result: MaintenanceResult,
    *,
    now: dt.datetime | None = None,
) -> None:
    """The same rule on S3: objects under warehouse/<database>.db/<table>/ (where the Glue catalog puts
    tables) that no table references, last modified before `orphan_age` ago, deleted in batches. A folder
    whose name is a table living elsewhere (another lake sharing the Glue database) is left alone: that
    table's metadata says nothing about this folder's files."""
    from ..lake.s3 import S3Storage

    if not isinstance(storage, S3Storage):
        raise LakeError(f"tables on S3 but the lake is not: {storage}", hint="open the lake by its s3:// URI")
    cutoff = (now or dt.datetime.now(dt.UTC)).timestamp() - orphan_age.total_seconds()
    tables = set(catalog.table_names())
    root = f"{WAREHOUSE_DIR}/{getattr(catalog, 'namespace', NAMESPACE)}.db/"
    doomed: list[S3Object] = []
    objects = storage.list_objects(root)  # in key order: one table folder after another
    for name, group in itertools.groupby(objects, key=lambda o: o.key[len(root) :].partition("/")[0]):
        keep: set[str] = set()
        if name in tables:
            location = catalog.table(name, create=False).metadata.location.rstrip("/")
            if location != storage.uri(root + name):
                log.warning("table %s lives at %s, not in this lake: its folder here is left alone", name, location)
                continue
            keep = referenced_files(catalog, name)
        for obj in group:
            if storage.uri(obj.key) in keep or obj.last_modified.timestamp() > cutoff:
                continue
            doomed.append(obj)
            if len(doomed) == S3_DELETE_BATCH:
                _delete_s3_orphans(storage, doomed, result)
    _delete_s3_orphans(storage, doomed, result)


def _delete_s3_orphans(storage: S3Storage, doomed: list[S3Object], result: MaintenanceResult) -> None:
    failed = storage.delete_many([o.key for o in doomed])
    gone = [o for o in doomed if o.key not in failed]
    result.orphans_deleted += len(gone)
    result.orphan_bytes_deleted += sum(o.size for o in gone)
    doomed.clear()


def _remove_empty_dirs(folder: Path) -> None:
    for path in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(path.iterdir()):
            path.rmdir()
