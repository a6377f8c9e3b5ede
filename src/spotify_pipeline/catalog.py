"""Tables by name: an embedded Iceberg catalog (SQLite + a warehouse folder inside the lake).

Every table write is one Iceberg commit (copy-on-write overwrite or append), so readers always see either
the previous snapshot or the new one, never a half-written table.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import shutil
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from .errors import LakeError
from .lake.layout import CATALOG_FILE, WAREHOUSE_DIR
from .lake.storage import os_error_hint
from .tables import TABLES

NAMESPACE = "spotify"
# Each commit writes a new metadata file holding every kept snapshot (~200 KB for a table with a week of
# hourly runs), and Iceberg keeps every earlier one unless told otherwise: tens of GB a year. Snapshots
# (time travel) are kept by retention.py; these are only the earlier versions of the metadata file.
TABLE_PROPERTIES = {
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "20",
}
log = logging.getLogger(__name__)


class Catalog:
    """The lake's tables. Created on first use; `exists()` says whether anything was ever published."""

    remote = False  # True when tables live on S3 (DuckDB then needs the S3 filesystem)

    def __init__(self, lake_root: Path) -> None:
        self.root = lake_root.resolve()
        self.location = str(self.root)
        self.namespace = NAMESPACE
        self._catalog: Any = None

    def exists(self) -> bool:
        return (self.root / CATALOG_FILE).exists()

    @property
    def iceberg(self) -> Any:
        if self._catalog is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from pyiceberg.catalog.sql import SqlCatalog

            try:
                self.root.mkdir(parents=True, exist_ok=True)
                (self.root / WAREHOUSE_DIR).mkdir(exist_ok=True)
                self._catalog = SqlCatalog(
                    "spotify_pipeline",
                    uri=f"sqlite:///{self.root / CATALOG_FILE}",
                    warehouse=(self.root / WAREHOUSE_DIR).as_uri(),
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
        from pyiceberg.exceptions import NoSuchTableError

        identifier = f"{self.namespace}.{name}"
        try:
            return self.iceberg.load_table(identifier)
        except NoSuchTableError:
            if not create:
                raise
            return self.iceberg.create_table(identifier, schema=TABLES[name].schema, properties=TABLE_PROPERTIES)

    def _writable(self, name: str) -> Any:
        """The table, with `TABLE_PROPERTIES` set (one commit, once, for tables created before them)."""
        table = self.table(name)
        missing = {k: v for k, v in TABLE_PROPERTIES.items() if table.properties.get(k) != v}
        return table.transaction().set_properties(missing).commit_transaction() if missing else table

    def table_names(self) -> list[str]:
        if not self.exists():
            return []
        return sorted(ident[-1] for ident in self.iceberg.list_tables(self.namespace))

    def data_files(self, name: str) -> list[str]:
        """Parquet files of the table's current snapshot (copy-on-write: no delete files to apply)."""
        table = self.table(name)
        paths = []
        for task in table.scan().plan_files():
            if task.delete_files:
                raise LakeError(f"table {name} has delete files; only copy-on-write tables are supported")
            paths.append(_local(task.file.file_path))
        return paths

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
            _replace_in_slices(self._writable(name), (rows.cast(schema) for rows in slices))

    def append(self, name: str, data: pa.Table) -> None:
        if data.num_rows:
            with self._writing(name):
                self._writable(name).append(data.cast(TABLES[name].schema))

    @contextlib.contextmanager
    def _writing(self, name: str) -> Iterator[None]:
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

    def snapshot_id(self, name: str) -> int | None:
        snapshot = self.table(name).current_snapshot()
        return None if snapshot is None else int(snapshot.snapshot_id)


def _replace_in_slices(table: Any, slices: Iterable[pa.Table]) -> None:
    """One delete and one append snapshot, however many slices. `Transaction.append` per slice would make
    a snapshot per slice, and pyiceberg re-applies every staged update (a deep copy of the table metadata,
    which holds every kept snapshot) each time the transaction's metadata is read: that grew with the
    table's history and was 13% of a 1M rebuild on a lake with ~250 snapshots per table. Passing a
    `RecordBatchReader` to `Transaction.overwrite` is not an option: in pyiceberg 0.12 its writer submits
    every file to a thread pool up front, which holds the whole table in memory.
    `_dataframe_to_data_files` is what `Transaction.append` calls for each table (pyiceberg 0.12)."""
    from pyiceberg.expressions import AlwaysTrue
    from pyiceberg.io.pyarrow import _dataframe_to_data_files

    with table.transaction() as tx:
        tx.delete(AlwaysTrue())
        metadata = tx.table_metadata  # fixed from here to the commit: read (and copied) once
        with tx.update_snapshot().fast_append() as append:
            counter = itertools.count()
            for rows in slices:
                if rows.num_rows:
                    for data_file in _dataframe_to_data_files(
                        table_metadata=metadata, df=rows, io=table.io, write_uuid=append.commit_uuid, counter=counter
                    ):
                        append.append_data_file(data_file)


def _local(path: str) -> str:
    return path.removeprefix("file://")


class GlueCatalog(Catalog):
    """Tables registered in AWS Glue, data in the lake's S3 prefix: what Athena reads natively.
    Same table names, columns and merge logic as the embedded catalog."""

    remote = True

    def __init__(self, lake_uri: str, database: str = NAMESPACE) -> None:
        from .lake.s3 import aws_endpoint

        self.root = Path("/nonexistent-s3-lake")
        self.location = lake_uri.rstrip("/")
        self.namespace = database
        self._endpoint = aws_endpoint()
        self._catalog = None

    @property
    def iceberg(self) -> Any:
        if self._catalog is None:
            import os

            from pyiceberg.catalog.glue import GlueCatalog as IcebergGlue

            props: dict[str, str] = {"warehouse": f"{self.location}/{WAREHOUSE_DIR}"}
            region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
            if region:
                props.update({"glue.region": region, "s3.region": region})
            if self._endpoint:
                props.update({"glue.endpoint": self._endpoint, "s3.endpoint": self._endpoint})
            try:
                self._catalog = IcebergGlue("glue", **props)
                if (self.namespace,) not in self._catalog.list_namespaces():
                    self._catalog.create_namespace(
                        self.namespace, {"location": f"{self.location}/{WAREHOUSE_DIR}/{self.namespace}.db"}
                    )
            except Exception as exc:  # boto3/pyiceberg raise many types for an unreachable catalog
                raise LakeError(
                    f"cannot open the Glue catalog (database {self.namespace}): {exc}",
                    hint="check the AWS credentials, region and IAM permissions",
                ) from exc
        return self._catalog

    def exists(self) -> bool:
        try:
            return bool(self.iceberg.list_tables(self.namespace))
        except LakeError:
            return False

    def free_bytes(self) -> int:
        return 2**62  # S3 does not fill up


def open_catalog(lake: str, glue_database: str = NAMESPACE) -> Catalog:
    """The catalog for a lake location: embedded (SQLite) for a folder, Glue for s3://."""
    if lake.startswith("s3://"):
        return GlueCatalog(lake, glue_database)
    return Catalog(Path(lake.removeprefix("file://")).expanduser())
