"""Make a copied or moved lake independent, or give a lost catalog.db its tables back.

Iceberg records absolute paths at every level (catalog.db -> metadata file -> manifest list -> manifests ->
data files), so a copy of a lake still points at its original, and `Catalog.check()` refuses it. A repair
builds a new catalog table by table:

- a table whose metadata lies in this lake (catalog.db was lost or emptied, the lake did not move) is
  registered again from its newest metadata file: nothing is rewritten and its whole history is kept;
- a table whose metadata points elsewhere (the lake was copied or moved) is read from this lake's own
  copies of its current files, every recorded path mapped from the old folder to this one (the old folder
  is never read: it may be gone, or have moved on), and written as a new table. Every current row is kept,
  the run history's too; the earlier snapshots (time travel) are not.

The new catalog is built beside the old one and swapped in with one rename: a repair killed half-way leaves
the lake as it was. Files only the old catalog referenced are deleted after the swap.

A publish journal left by a transform killed half-way through its commits (transform/journal.py) names
snapshot ids, which a rewritten table no longer has. So a rewritten table is read as readers of the lake
showed it (query/consistent.py): each table the publish commits at the journal's `before` (the state before
the interrupted publish; `processed_raw_runs` too, so its raw runs are applied again), `pipeline_runs` up to
the first line a publish appended (the rest follows in a second commit, marked as that line was), every other
table current. The journal is rewritten with the new tables' ids: readers show those tables, and the next
run or transform redoes the publish from them, as it would have on the original. It is staged beside the
journal and renamed into place just after the catalog (a repair killed between the two renames is finished
by the next `repair`). A registered table keeps its history and so the ids the journal names.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from pyiceberg.io.pyarrow import PyArrowFileIO

from ..errors import LakeError
from ..lake.layout import CATALOG_FILE, PUBLISH_JOURNAL_KEY, WAREHOUSE_DIR
from ..lake.lock import LakeLock
from ..lake.storage import LocalStorage
from ..reliability.crashpoints import crash_point
from ..transform.journal import RUN_LINE, RUNS_TABLE, PublishJournal, read_journal, runs_shown, write_journal
from .catalog import Catalog, table_properties
from .catalog_db import CATALOG_NAME, NAMESPACE, _local, newest_metadata, origin_of, recorded_tables, sqlite_uri
from .contract import DATA_TABLES, TABLES
from .files import sql_paths
from .writes import replace_in_slices

log = logging.getLogger(__name__)
STAGING_SUFFIX = ".repair"  # catalog.db.repair: the new catalog until it is swapped in (publish.json.repair too)
STAGED_JOURNAL_KEY = PUBLISH_JOURNAL_KEY + STAGING_SUFFIX
Snapshots = dict[str, int | None]  # table -> snapshot id (None: no snapshot, the table shown empty)


@dataclass
class RepairResult:
    root: Path
    origin: str | None = None  # the folder the lake was copied or moved from, if it was
    registered: list[str] = field(default_factory=list)  # tables registered again, history kept
    rewritten: dict[str, int] = field(default_factory=dict)  # tables rewritten from their current rows
    files_deleted: int = 0  # files only the old catalog referenced
    unfinished_publish: bool = False  # a publish journal was left: rewritten tables kept as readers showed them
    journal_finished: bool = False  # a repair killed after its catalog's rename: its journal renamed in now

    def lines(self) -> list[str]:
        if self.journal_finished:
            return [f"finished an interrupted repair of the lake at {self.root}: its publish journal is in place"]
        if not self.registered and not self.rewritten:
            return [f"nothing to repair: the catalog of the lake at {self.root} lists its tables, all inside it"]
        out = []
        if self.origin:
            out.append(f"the lake at {self.root} was copied or moved from {self.origin}; it is now independent")
        if self.rewritten:
            rows = ", ".join(f"{name} {count}" for name, count in self.rewritten.items())
            out.append(f"rewritten from their current rows: {rows}")
            out.append("their earlier snapshots (time travel history) were dropped; every current row is kept")
        if self.registered:
            out.append(f"registered again with their whole history: {', '.join(self.registered)}")
        if self.unfinished_publish and self.rewritten:
            out.append(
                "a crash had left a publish unfinished (_state/publish.json): its tables were written as they stood"
                " before it, and the next run or transform finishes it"
            )
        out.append(f"deleted {self.files_deleted} files only the old catalog used")
        return out


def repair_lake(root: Path) -> RepairResult:
    """Repair the local lake at `root` (see the module docstring); a healthy lake is left untouched."""
    catalog = Catalog(root)
    result = RepairResult(catalog.root)
    storage = LocalStorage(catalog.root)
    try:
        catalog.check()
    except LakeError:
        pass
    else:
        if storage.exists(STAGED_JOURNAL_KEY):  # a repair killed between its catalog's rename and its journal's
            with LakeLock(catalog.root, "repair"):
                os.replace(catalog.root / STAGED_JOURNAL_KEY, catalog.root / PUBLISH_JOURNAL_KEY)
            result.journal_finished = True
        return result
    with LakeLock(catalog.root, "repair"):
        sources = _sources(catalog.root)
        if not sources:
            raise LakeError(
                f"no tables to repair in {catalog.root / WAREHOUSE_DIR}", hint="restore the lake from a backup"
            )
        (catalog.root / STAGED_JOURNAL_KEY).unlink(missing_ok=True)  # of a repair killed before its swap
        journal = _journal(storage)
        result.unfinished_publish = journal is not None
        shown = journal.shown() if journal is not None else None
        db = catalog.root / CATALOG_FILE
        staging = db.with_name(db.name + STAGING_SUFFIX)
        staging.unlink(missing_ok=True)  # left by a repair that was killed
        new = _open(staging, catalog.warehouse_uri)
        name = ""
        ids: Snapshots = {}  # each rewritten table's new snapshot id for the state readers showed
        try:
            for name, location in sources.items():
                _repair_table(catalog, new, name, location, result, shown, ids)
        except LakeError:
            new.engine.dispose()
            staging.unlink(missing_ok=True)
            raise
        except (OSError, duckdb.Error) as exc:  # a file of the copy is missing or unreadable: an incomplete copy
            new.engine.dispose()
            staging.unlink(missing_ok=True)
            raise LakeError(
                f"cannot repair table {name}: {exc}",
                hint="the catalog is unchanged; the copy may be incomplete: copy the lake again or restore a backup",
            ) from exc
        new.engine.dispose()
        if journal is not None and result.rewritten:
            write_journal(storage, _renumbered(journal, ids), STAGED_JOURNAL_KEY)
        for suffix in ("-journal", "-wal", "-shm"):  # the old catalog's, never to be applied to the new one
            db.with_name(db.name + suffix).unlink(missing_ok=True)
        os.replace(staging, db)
        crash_point("repair.catalog_swapped")
        if journal is not None and result.rewritten:
            os.replace(catalog.root / STAGED_JOURNAL_KEY, catalog.root / PUBLISH_JOURNAL_KEY)
        result.files_deleted = _delete_unused(Catalog(catalog.root), list(result.rewritten))
    log.info("repaired the lake at %s: %s", catalog.root, "; ".join(result.lines()))
    return result


def _journal(storage: LocalStorage) -> PublishJournal | None:
    """The journal of an unfinished publish; an unreadable one is left as it is (the next transform refuses
    it and says what to do) and the tables are repaired as they are, as readers show them then."""
    try:
        return read_journal(storage)
    except LakeError as exc:
        log.warning("%s; repairing the tables as they are", exc)
        return None


def _renumbered(journal: PublishJournal, ids: Snapshots) -> PublishJournal:
    """The journal naming each rewritten table's new snapshot: the one holding the rows readers showed, which
    are those of the journal's snapshots (a table's other snapshot ids, of tables the publish does not commit,
    only ever counted rows). A registered table keeps its ids."""

    def renumber(snapshots: Snapshots) -> Snapshots:
        return {n: ids[n] if n in ids and i is not None else i for n, i in snapshots.items()}

    before = None if journal.before is None else renumber(journal.before)
    return PublishJournal(renumber(journal.snapshots), journal.raw_runs, journal.rebuild, journal.started_at, before)


def _sources(root: Path) -> dict[str, str]:
    """Each table's current metadata file: as catalog.db records it, or else the newest in warehouse/."""
    db = root / CATALOG_FILE
    if db.exists() and db.stat().st_size:
        with contextlib.suppress(LakeError):
            if recorded := recorded_tables(db):
                return dict(sorted(recorded.items()))
    return {name: f"file://{path}" for name, path in newest_metadata(root).items()}


def _open(db: Path, warehouse: str) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pyiceberg.catalog.sql import SqlCatalog

    new = SqlCatalog(CATALOG_NAME, uri=sqlite_uri(db), warehouse=warehouse)
    new.create_namespace(NAMESPACE)
    return new


def _repair_table(
    catalog: Catalog, new: Any, name: str, location: str, result: RepairResult, shown: Snapshots | None, ids: Snapshots
) -> None:
    from pyiceberg.catalog.noop import NoopCatalog
    from pyiceberg.serializers import FromInputFile
    from pyiceberg.table import StaticTable

    io = _CopiedFiles(_warehouse_prefix(location), catalog.warehouse_uri + "/")
    metadata = FromInputFile.table_metadata(io.new_input(location))
    identifier = (NAMESPACE, name)
    if catalog.owns(metadata.location) and catalog.owns(location):
        new.register_table(identifier, location)
        result.registered.append(name)
        return
    io.old = _warehouse_prefix(metadata.location)  # what the manifests' paths were recorded under
    result.origin = result.origin or origin_of(metadata.location)
    old = StaticTable(identifier, metadata, location, io, NoopCatalog("copied"))
    schema = TABLES[name].schema if name in TABLES else old.schema().as_arrow()
    # What the table says about itself travels with it (e.g. contract.LAST_SEEN_MODEL: without it, the next
    # transform would rebuild the copy from the raw zone); the write settings are this version's.
    properties = {**old.properties, **table_properties(name)}
    table = new.create_table(
        identifier, schema=TABLES[name].schema if name in TABLES else old.schema(), properties=properties
    )
    result.rewritten[name] = 0
    at = _shown_snapshot(old, name, shown)
    _write_rows(old, table, name, schema, at, result)
    ids[name] = new.load_table(identifier).metadata.current_snapshot_id
    current = old.metadata.current_snapshot_id
    if name == RUNS_TABLE and at != current and current is not None:  # lines a reader did not show yet
        _append_hidden_lines(old, table, at, current, schema, result)


def _shown_snapshot(old: Any, name: str, shown: Snapshots | None) -> int | None:
    """The snapshot of `old` whose rows the repaired table gets: the one readers show (module docstring)."""
    current: int | None = old.metadata.current_snapshot_id
    if shown is None or name not in shown:
        return current
    at = runs_shown(old, shown[name]) if name == RUNS_TABLE else shown[name]
    if at is not None and old.snapshot_by_id(at) is None:
        raise LakeError(
            f"cannot repair table {name}: the publish journal _state/publish.json names its snapshot {at}, which"
            " the table no longer has",
            hint="the catalog is unchanged; restore the lake from a backup, or delete _state/publish.json, repair,"
            " and run `spotify-pipeline transform --rebuild`",
        )
    return at


def _write_rows(old: Any, table: Any, name: str, schema: pa.Schema, at: int | None, result: RepairResult) -> None:
    """The rows of `old` at snapshot `at` (None: none) written into the new `table`, in one commit."""
    if at is None:
        return
    io = old.io
    tasks = list(old.scan(snapshot_id=at).plan_files())
    files = [_local(io.map(task.file.file_path)) for task in tasks]
    if not files:
        return
    if any(task.delete_files for task in tasks):  # pyiceberg applies them; their paths are the old lake's
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Delete operation did not match any records")
            batches = old.scan(snapshot_id=at).to_arrow_batch_reader()
            slices = (pa.Table.from_batches([b]).select(schema.names).cast(schema) for b in batches)
            replace_in_slices(table, _counted(slices, result, name))
        return
    from ..transform.connection import connect
    from ..transform.publish import PUBLISH_ROWS, sort_order

    listed = sql_paths(files)
    # In the table's sort order, as the transform writes it: unordered, every file of a copied lake spanned
    # the whole key range, and a one-playlist run read and rewrote every file (issue #20).
    order = f" ORDER BY {sort_order(name)}" if name in DATA_TABLES else ""
    with contextlib.closing(connect()) as con, warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Delete operation did not match any records")
        query = f"SELECT * FROM read_parquet({listed}, union_by_name = true){order}"
        reader = con.sql(query).to_arrow_reader(PUBLISH_ROWS)
        slices = (pa.Table.from_batches([batch]).select(schema.names).cast(schema) for batch in reader)
        replace_in_slices(table, _counted(slices, result, name))


def _append_hidden_lines(
    old: Any, table: Any, at: int | None, current: int, schema: pa.Schema, result: RepairResult
) -> None:
    """`pipeline_runs`' lines from the first one an unfinished publish appended on: appended after the lines
    readers showed, in one commit marked as that line's was, so readers keep hiding them until the publish
    is redone (transform/journal.py), and every line is kept."""
    rows = old.scan(snapshot_id=current).to_arrow()
    shown = old.scan(snapshot_id=at).to_arrow() if at is not None else rows.slice(0, 0)
    with contextlib.closing(duckdb.connect()) as con:
        con.register("all_lines", rows)
        con.register("shown_lines", shown)
        hidden = con.sql("SELECT * FROM all_lines EXCEPT ALL SELECT * FROM shown_lines").to_arrow_table()
    if not hidden.num_rows:
        return
    line = _first_run_line(old, at, current)
    table.append(hidden.select(schema.names).cast(schema), snapshot_properties={RUN_LINE: line})
    result.rewritten[RUNS_TABLE] += hidden.num_rows


def _first_run_line(old: Any, at: int | None, current: int) -> str:
    """The run id that marks the first snapshot after `at` a publish appended a run's line in."""
    line, snapshot = "", old.snapshot_by_id(current)
    while snapshot is not None and snapshot.snapshot_id != at:
        line = (snapshot.summary or {}).get(RUN_LINE) or line
        parent = snapshot.parent_snapshot_id
        snapshot = None if parent is None else old.snapshot_by_id(parent)
    return line or "repair"


def _counted(slices: Iterator[pa.Table], result: RepairResult, name: str) -> Iterator[pa.Table]:
    for rows in slices:
        result.rewritten[name] += rows.num_rows
        yield rows


def _warehouse_prefix(location: str) -> str:
    """`file:///old/lake/warehouse/` from a table or metadata location recorded under it."""
    head, sep, _ = location.rpartition(f"/{WAREHOUSE_DIR}/{NAMESPACE}/")
    if not sep:
        raise LakeError(
            f"table metadata outside any lake's warehouse: {location}", hint="restore the lake from a backup"
        )
    return f"{head}/{WAREHOUSE_DIR}/"


class _CopiedFiles(PyArrowFileIO):
    """Reads the files a table's metadata names from this lake's copies of them: `old` (the warehouse the
    paths were recorded under) becomes `new`. A path outside `old` is refused, never read."""

    def __init__(self, old: str, new: str) -> None:
        super().__init__()
        self.old, self.new = old, new

    def map(self, path: str) -> str:
        if path.startswith(self.new):
            return path
        if not path.startswith(self.old):
            raise LakeError(f"a table lists a file outside its lake: {path}", hint="restore the lake from a backup")
        return self.new + path[len(self.old) :]

    def new_input(self, location: str) -> Any:
        return super().new_input(self.map(location))

    def new_output(self, location: str) -> Any:
        raise LakeError(f"repair never writes through the copied tables: {location}")

    def delete(self, location: Any) -> None:
        raise LakeError(f"repair never deletes through the copied tables: {location}")


def _delete_unused(catalog: Catalog, names: list[str]) -> int:
    """Delete the files in rewritten tables' folders that their new metadata does not reference."""
    deleted = 0
    for name in names:
        table = catalog.table(name, create=False)
        used = {table.metadata_location} | {entry.metadata_file for entry in table.metadata.metadata_log}
        for snapshot in table.metadata.snapshots:
            used.add(snapshot.manifest_list)
            for manifest in snapshot.manifests(table.io):
                used.add(manifest.manifest_path)
                used |= {e.data_file.file_path for e in manifest.fetch_manifest_entry(table.io)}
        used_paths = {_local(path) for path in used}
        folder = catalog.root / WAREHOUSE_DIR / NAMESPACE / name
        for path in folder.rglob("*"):
            if path.is_file() and str(path) not in used_paths:
                path.unlink()
                deleted += 1
    return deleted
