"""Tables by name: an embedded Iceberg catalog (SQLite + a warehouse folder inside the lake).

Every table write is one Iceberg commit (an overwrite, an append, or a keyed replace marking rows deleted:
replace.py), so readers always see either the previous snapshot or the new one, never a half-written table.

Iceberg records absolute paths (catalog.db -> metadata file -> manifest list -> manifests -> data files),
so a copied or moved lake still points at the folder it came from. Before anything is read or written,
`Catalog.check()` compares those paths with where the lake is now and refuses one that was copied or
moved (`repair.py` makes it independent), and refuses a catalog.db that is empty or missing while the
warehouse holds tables: recreating it would silently hide every table's history.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sys
import threading
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..errors import LakeError
from ..lake.layout import CATALOG_FILE, WAREHOUSE_DIR
from ..lake.storage import os_error_hint
from .catalog_db import (
    CATALOG_NAME,
    NAMESPACE,
    lost_catalog_hint,
    newest_metadata,
    origin_of,
    recorded_tables,
    sqlite_uri,
)
from .contract import TABLES
from .deletes import merges_on_read
from .files import TableFiles, files_of_tasks
from .replace import replace_by_deletes, transaction
from .writes import key_range, overwrite_with_copies, replace_in_slices

# Each commit writes a new metadata file holding every kept snapshot (~200 KB for a table with a week of
# hourly runs), and Iceberg keeps every earlier one unless told otherwise: tens of GB a year. Snapshots
# (time travel) are kept by retention.py; these are only the earlier versions of the metadata file, so a
# few suffice (20 were a seventh of a week's lake at 100k: docs/BENCHMARKS.md, "A week within 1.5x").
# Tables made with other values get these on their next write or `maintain` (`Catalog._writable`).
TABLE_PROPERTIES = {
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "3",
}
# Row groups of `ROW_GROUP_ROWS` rows inside the data files of the tables a small run reads by ids spread
# at random over the whole table (songs, albums, artists and what hangs off them): a reader decodes every
# column of each row group whose statistics may hold a key it looks for. At 10M items 133 songs hit 59 of
# the 72 one-row-group files of `songs`, 2.2 s of decoding where row groups of 5,000 rows took 0.66 s, for
# 4% more bytes. Not for `playlist_songs`, whose run reads a playlist's rows, a narrow range already: ten
# times the row groups of its 10M rows tripled that read (0.034 -> 0.10 s; docs/BENCHMARKS.md, "10M:
# bounded by the change"). Other tables keep pyiceberg's default (a row group per `PUBLISH_ROWS` file).
ROW_GROUP_ROWS = 5_000
SMALL_ROW_GROUPS = (
    "songs",
    "song_artists",
    "albums",
    "album_artists",
    "artists",
    "artist_stats",
    "playlists",
    "song_popularity",
)


def table_properties(name: str) -> dict[str, str]:
    """The properties table `name` is created and written with: `TABLE_PROPERTIES`, and the row groups'
    size of `SMALL_ROW_GROUPS`."""
    if name in SMALL_ROW_GROUPS:
        return {**TABLE_PROPERTIES, "write.parquet.row-group-limit": str(ROW_GROUP_ROWS)}
    return dict(TABLE_PROPERTIES)


# How tables are laid out so that a run rewrites only the files holding what it changed (issue #20): every
# table is unpartitioned and written sorted by one column (`CLUSTER_BY`, else its first key column) in
# files of `transform.publish.PUBLISH_ROWS` rows, so each file holds a narrow range of that column and its
# min/max statistics let `replace_rows` skip every file that cannot hold a changed key (docs/ARCHITECTURE.md,
# docs/BENCHMARKS.md). Time series are clustered by time: a run's new observations are appended.
CLUSTER_BY: dict[str, str] = {
    "playlist_changes": "run_id",
    "song_popularity": "observed_date",
    "plays": "played_at",
    "user_top": "observed_date",
    # Listening history by end time: a later import or a poll adds and replaces recent plays, so it reads and
    # rewrites only the newest files, where by `listen_id` (an md5) its keys hit nearly every file.
    "listen_events": "ended_at",
    "listens": "ended_at",
}
# Snapshots per table whose planned files a Catalog keeps (`files`): a transform reads the base and the current.
PLANNED_PER_TABLE = 4
# `replace_rows` names every changed key in one delete filter; past this many, a whole-table overwrite
# (pyiceberg 0.12 prunes files by statistics for an IN list of at most 200 values: replace.py).
MAX_REPLACED_KEYS = 10_000


def cluster_column(name: str) -> str:
    """The column a table is sorted by when written, and whose values name the rows a run replaces."""
    return CLUSTER_BY.get(name, TABLES[name].key[0])


log = logging.getLogger(__name__)


# pyiceberg and sqlalchemy take ~0.6 CPU s to import, on one core. `preload_library` imports them on a
# thread while the caller's other work runs (a history import: its transform's first DuckDB steps, which
# release the GIL, and nothing else uses pyiceberg before its first commit). Every use of pyiceberg here
# waits for that thread first (`library_loaded`), so two threads never import the same modules at once.
_preloading: threading.Thread | None = None


def preload_library() -> None:
    """Start importing pyiceberg on a thread, if nothing has imported it yet."""
    global _preloading
    if _preloading is None and "pyiceberg.catalog.sql" not in sys.modules:
        _preloading = threading.Thread(target=_import_library, name="preload-pyiceberg", daemon=True)
        _preloading.start()


def _import_library() -> None:
    with contextlib.suppress(Exception):  # the first use imports it again, and reports what went wrong
        import pyiceberg.catalog.sql
        import pyiceberg.expressions
        import pyiceberg.io.pyarrow
        import pyiceberg.table  # noqa: F401
        import sqlalchemy.exc  # noqa: F401


def library_loaded() -> None:
    """Wait for `preload_library`'s thread, if one runs: pyiceberg's modules are imported once."""
    if _preloading is not None:
        _preloading.join()


class Catalog:
    """The lake's tables. Created on first use; `exists()` says whether anything was ever published."""

    remote = False  # True when tables live on S3 (DuckDB then needs the S3 filesystem)

    def __init__(self, lake_root: Path) -> None:
        self.root = lake_root.resolve()
        self.location = str(self.root)
        self.namespace = NAMESPACE
        self._catalog: Any = None
        self._checked = False
        self._loaded: dict[str, Any] = {}  # table name -> the pyiceberg Table last loaded (`table`)
        self._planned: dict[str, dict[int, TableFiles]] = {}  # table -> snapshot -> its files (`files`)

    @property
    def warehouse_uri(self) -> str:
        """Where every file of every table lives; nothing outside it is ever read, written or deleted.
        Not percent-encoded (`Path.as_uri()`): pyiceberg 0.12 writes metadata files to the encoded path
        literally, so a lake at `/my lake` had its metadata in a sibling folder `/my%20lake`."""
        return f"file://{self.root / WAREHOUSE_DIR}"

    def exists(self) -> bool:
        self.check()
        return (self.root / CATALOG_FILE).exists()

    def check(self) -> None:
        """Refuse (LakeError) a lake copied or moved from elsewhere, and a catalog.db that is empty or gone
        while warehouse/ holds tables. A new lake (neither exists yet) passes. Reads catalog.db read-only."""
        if self._checked:
            return
        if any(c in str(self.root) for c in "#?"):
            raise LakeError(
                f"the lake path {self.root} contains # or ?, which Iceberg's file paths cannot hold",
                hint="use a folder whose path has neither",
            )
        db = self.root / CATALOG_FILE
        repair = f"run `spotify-pipeline repair --lake {self.root}`"
        if db.exists() and db.stat().st_size == 0:
            raise LakeError(
                f"the table catalog {db} is empty (0 bytes); recreating it would lose every table's history",
                hint=lost_catalog_hint(self.root),
            )
        locations = recorded_tables(db) if db.exists() else {}
        if not locations:
            found = newest_metadata(self.root)
            if found:
                state = "lists no tables" if db.exists() else "is missing"
                raise LakeError(
                    f"the table catalog {db} {state} but warehouse/ holds {len(found)} tables; recreating it "
                    "would lose their history",
                    hint=lost_catalog_hint(self.root),
                )
        foreign = sorted(loc for loc in locations.values() if not self.owns(loc))
        if foreign:
            raise LakeError(
                f"this lake was copied or moved from {origin_of(foreign[0])}: its catalog still points there, "
                "so it would read and write the original's files",
                hint=f"{repair} to make it independent",
            )
        self._checked = True

    def owns(self, path: str) -> bool:
        """Whether a file path recorded in the table metadata lies inside this lake's warehouse. Tables made
        before `warehouse_uri` stopped percent-encoding recorded the encoded form: still this lake's."""
        legacy = (self.root / WAREHOUSE_DIR).as_uri()
        return path.startswith(self.warehouse_uri + "/") or path.startswith(legacy + "/")

    @property
    def iceberg(self) -> Any:
        if self._catalog is None:
            library_loaded()
            self.check()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from pyiceberg.catalog.sql import SqlCatalog

            try:
                self.root.mkdir(parents=True, exist_ok=True)
                (self.root / WAREHOUSE_DIR).mkdir(exist_ok=True)
                self._catalog = SqlCatalog(
                    CATALOG_NAME,
                    uri=sqlite_uri(self.root / CATALOG_FILE),
                    warehouse=self.warehouse_uri,
                )
                if (NAMESPACE,) not in self._catalog.list_namespaces():
                    self._catalog.create_namespace(NAMESPACE)
            except Exception as exc:  # sqlalchemy/pyiceberg raise many types for a broken catalog
                raise LakeError(
                    f"cannot open the table catalog {self.root / CATALOG_FILE}: {exc}",
                    hint="if it is corrupted, move it aside and run `spotify-pipeline transform --rebuild`",
                ) from exc
        return self._catalog

    def table(self, name: str, *, create: bool = True) -> Any:
        library_loaded()
        from pyiceberg.exceptions import NoSuchTableError

        identifier = f"{self.namespace}.{name}"
        # A metadata file never changes once written: while catalog.db still points at the one a loaded table
        # was read from, that table is current (a transform loaded tables ~75 times, reading and parsing a
        # metadata file each time). Glue tables are loaded each time.
        loaded = self._loaded.get(name)
        if loaded is not None and not self.remote and loaded.metadata_location == self._recorded(name):
            return loaded
        try:
            table = self.iceberg.load_table(identifier)
        except NoSuchTableError:
            if not create:
                raise
            table = self.iceberg.create_table(identifier, schema=TABLES[name].schema, properties=table_properties(name))
        self._loaded[name] = table
        return table

    def _writable(self, name: str) -> Any:
        """The table, with `table_properties` set (one commit, once, for tables created before them)."""
        table = self.table(name)
        missing = {k: v for k, v in table_properties(name).items() if table.properties.get(k) != v}
        return table.transaction().set_properties(missing).commit_transaction() if missing else table

    def mark(self, name: str, key: str, value: str) -> None:
        """Set a table property (one commit; none when it is set already)."""
        table = self.table(name)
        if table.properties.get(key) != value:
            with self._writing(name):
                table.transaction().set_properties({key: value}).commit_transaction()

    def marked(self, name: str, key: str, value: str) -> bool:
        """Whether the table has the property `key` set to `value`."""
        return bool(self.table(name).properties.get(key) == value)

    def _recorded(self, name: str) -> str | None:
        """Where catalog.db says the table's current metadata file is."""
        return recorded_tables(self.root / CATALOG_FILE).get(name)

    def replace_rows(
        self,
        name: str,
        column: str,
        keys: list[Any],
        rows: Iterable[pa.RecordBatch],
        key_rows: pa.Table | None = None,
    ) -> None:
        """Replace the rows whose `column` is one of `keys` by `rows` (appended), in one commit: marked deleted
        by position (replace.py; `key_rows` narrows them to its rows), or in a v1 table copy-on-write
        (pyiceberg rewrites the files holding a key without its rows). Every other row is unchanged.
        The keys' range goes beside them (`key_range`): pyiceberg 0.12 prunes files by an `In` filter's
        values only up to 200 of them, by a range always; a table clustered by `column` then has only the
        files of that range searched (a later import of 2,000 plays: the newest files, not all of them)."""
        library_loaded()
        from pyiceberg.expressions import AlwaysFalse, And, In

        schema = TABLES[name].schema
        within = key_range(column, schema.field(column).type, keys)
        with warnings.catch_warnings(), self._writing(name):
            warnings.filterwarnings("ignore", "Delete operation did not match any records")
            table = self._writable(name)
            slices = (pa.Table.from_batches([b]).cast(schema) for b in rows)
            if keys and merges_on_read(table):
                replace_by_deletes(self, table, name, column, keys, slices, key_rows, within)
                return
            if key_rows is not None:
                raise LakeError(f"table {name} cannot mark rows deleted (Iceberg format v1 or no rows)")
            member: Any = In  # typed as its pydantic fields in pyiceberg 0.12, called as In(term, literals)
            matching = member(column, keys) if keys else AlwaysFalse()
            replace_in_slices(table, slices, And(matching, within) if within is not None and keys else matching)

    def table_names(self) -> list[str]:
        if not self.exists():
            return []
        return sorted(ident[-1] for ident in self.iceberg.list_tables(self.namespace))

    def data_files(self, name: str, snapshot_id: int | None = None) -> list[str]:
        """Parquet data files of the table's snapshot (some rows may be deleted: `files()` reads its rows)."""
        return self.files(name, snapshot_id).data

    def files(self, name: str, snapshot_id: int | None = None) -> TableFiles:
        """The data and delete files of the current snapshot, or of `snapshot_id`, as DuckDB reads them."""
        table = self.table(name)
        if snapshot_id is not None and table.snapshot_by_id(snapshot_id) is None:
            raise LakeError(
                f"snapshot {snapshot_id} of table {name} no longer exists",
                hint="run `spotify-pipeline transform --rebuild` to rebuild every table from the raw zone",
            )
        # A snapshot's files never change: planned once (reading every manifest) per Catalog, not at each
        # reader of it (a transform counted rows and registered each table from the same snapshot).
        current = table.current_snapshot()
        snapshot = snapshot_id if snapshot_id is not None else current.snapshot_id if current else None
        planned = self._planned.setdefault(name, {})
        if snapshot in planned:
            return planned[snapshot]
        files = files_of_tasks(name, table.scan(snapshot_id=snapshot_id).plan_files(), self.owns)
        if snapshot is not None:
            planned[snapshot] = files
            while len(planned) > PLANNED_PER_TABLE:  # a long-lived Catalog (a poller) keeps the newest few
                del planned[next(iter(planned))]
        return files

    def read(self, name: str) -> pa.Table:
        return self.table(name).scan().to_arrow()

    def overwrite(self, name: str, data: pa.Table | Iterable[pa.RecordBatch]) -> None:
        """Replace the table's rows in one commit. Record batches (e.g. a stream from DuckDB) are written
        slice by slice inside one transaction, so memory holds one slice, not the table: the commit at the
        end swaps every slice in at once, and a failure before it leaves the table as it was."""
        schema = TABLES[name].schema
        with warnings.catch_warnings(), self._writing(name):
            warnings.filterwarnings("ignore", "Delete operation did not match any records")
            slices = [data] if isinstance(data, pa.Table) else (pa.Table.from_batches([b]) for b in data)
            replace_in_slices(self._writable(name), (rows.cast(schema) for rows in slices))

    def overwrite_as_copy(self, name: str, source: str, rows: int) -> bool:
        """Replace the table's rows by copies of table `source`'s data files, in one commit, when the caller
        knows their rows are the same and there are `rows` of them (writes.py `overwrite_with_copies`).
        False, having written nothing: not copyable (another schema, rows marked deleted, another count)."""
        with warnings.catch_warnings(), self._writing(name):
            warnings.filterwarnings("ignore", "Delete operation did not match any records")
            return overwrite_with_copies(self._writable(name), self.table(source), rows)

    def append(self, name: str, data: pa.Table, properties: dict[str, str] | None = None) -> None:
        """Commit `data` as new rows; `properties` go into the snapshot's summary (readers may look)."""
        if data.num_rows:
            with self._writing(name), transaction(self._writable(name)) as tx:  # metadata built once per update
                tx.append(data.cast(TABLES[name].schema), snapshot_properties=properties or {})

    @contextlib.contextmanager
    def _writing(self, name: str) -> Iterator[None]:
        library_loaded()
        from sqlalchemy.exc import OperationalError

        try:
            yield
        except OSError as exc:
            raise LakeError(
                f"cannot write table {name} in {self.location}: {exc.strerror or exc}", hint=os_error_hint(exc)
            ) from exc
        except OperationalError as exc:  # the embedded catalog refused the commit (read-only, locked)
            raise LakeError(
                f"cannot write table {name} in {self.location}: the table catalog refused the commit ({exc.orig})",
                hint="the lake is not writable: fix its permissions or point --lake elsewhere",
            ) from exc

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.root).free

    def drop_all(self, keep: tuple[str, ...] = ()) -> None:
        for name in self.table_names():
            if name not in keep:
                self.iceberg.drop_table(f"{self.namespace}.{name}")

    def metadata_locations(self) -> dict[str, str]:
        """Each table's current metadata file (new at every commit), in one read without loading any table."""
        from ..lake.layout import CATALOG_FILE
        from .catalog_db import recorded_tables

        db = self.root / CATALOG_FILE
        return recorded_tables(db) if db.exists() else {}

    def snapshot_id(self, name: str) -> int | None:
        snapshot = self.table(name).current_snapshot()
        return None if snapshot is None else int(snapshot.snapshot_id)


def open_catalog(lake: str, glue_database: str = NAMESPACE) -> Catalog:
    """The catalog for a lake location: embedded (SQLite) for a folder, Glue for s3://."""
    if lake.startswith("s3://"):
        from .glue_catalog import GlueCatalog  # boto3 and pyiceberg's Glue client: only for an S3 lake

        return GlueCatalog(lake, glue_database)
    return Catalog(Path(lake.removeprefix("file://")).expanduser())
