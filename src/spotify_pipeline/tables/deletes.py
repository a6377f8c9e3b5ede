"""Iceberg v2 position delete files, written and committed: what pyiceberg 0.12 reads but does not write.

A keyed replace (catalog.py `replace_rows`) marks the replaced rows deleted by their position in the data
files that hold them instead of rewriting those files (merge-on-read), so a run that changes 100 songs
spread over every file of `songs` writes ~100 positions, not the table. Readers apply them: pyiceberg's
scan natively, our DuckDB views through `files.TableFiles`, Athena natively (Iceberg v2).

The only module that relies on pyiceberg internals (pyproject pins pyiceberg < 0.13; re-check on upgrade):
- `pyiceberg.table.update.snapshot._SnapshotProducer`: its constructor, `_manifests` (overridden), `_summary`,
  `_commit`, `new_manifest_output`, `_added_data_files` / `_deleted_data_files`, `_snapshot_id`,
  `_parent_snapshot_id`, `_compression`, `_transaction`, `_io`;
- `pyiceberg.manifest.ManifestWriterV2`, whose `content()` is fixed to DATA (subclassed for DELETES);
- `pyiceberg.io.pyarrow`: `compute_statistics_plan`, `parquet_path_to_id_mapping`,
  `data_file_statistics_from_parquet_metadata` (the column statistics of the delete file);
- `pyiceberg.table.locations.load_location_provider` (where the table's data files go).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

# Iceberg's reserved field ids of a position delete file's columns (spec, "Position Delete Files").
FILE_PATH_ID = 2147483546
POS_ID = 2147483545
POSITION_DELETES = pa.schema(
    [
        pa.field("file_path", pa.string(), nullable=False, metadata={b"PARQUET:field_id": str(FILE_PATH_ID).encode()}),
        pa.field("pos", pa.int64(), nullable=False, metadata={b"PARQUET:field_id": str(POS_ID).encode()}),
    ]
)


def merges_on_read(table: Any) -> bool:
    """Whether a keyed replace can mark rows deleted: position deletes exist from Iceberg format v2 on (our
    tables are v2, pyiceberg's default), and there must be rows to mark."""
    return table.current_snapshot() is not None and int(table.metadata.format_version) >= 2


def read_positions(io: Any, delete_paths: Iterable[str]) -> pa.Table:
    """The (file_path, pos) rows of position delete files (each a few KB: one per run since `maintain`)."""
    parts = []
    for path in delete_paths:
        with io.new_input(path).open() as stream:
            parts.append(pq.read_table(stream, columns=["file_path", "pos"]).cast(POSITION_DELETES))
    return pa.concat_tables(parts) if parts else POSITION_DELETES.empty_table()


def count_deleted(positions: pa.Table, live_paths: Iterable[str] | None = None) -> dict[str, int]:
    """Deleted rows per data file (as the metadata records its path) in `positions` (read_positions): a
    position marked twice counts once, as readers apply it once. With `live_paths`, only those files: a delete
    file outlives a data file it marked when a later commit drops or rewrites that file."""
    if live_paths is not None:
        live = pa.array(sorted(set(live_paths)), pa.string())
        positions = positions.filter(pc.is_in(positions.column("file_path"), value_set=live))
    counts = positions.group_by("file_path").aggregate([("pos", "count_distinct")])
    return dict(zip(counts["file_path"].to_pylist(), counts["pos_count_distinct"].to_pylist(), strict=True))


def deleted_positions(io: Any, delete_paths: Iterable[str], live_paths: Iterable[str] | None = None) -> dict[str, int]:
    """Deleted rows per data file, read from the delete files `delete_paths` (count_deleted): what a file's
    live rows are (its record count less this), for row counts, replaces and compaction alike."""
    return count_deleted(read_positions(io, delete_paths), live_paths)


def write_position_deletes(table: Any, positions: pa.Table, commit_uuid: uuid.UUID) -> Any:
    """One position delete Parquet file in the table's data folder holding `positions` (`file_path` as the
    table metadata records the data file, `pos` its 0-based row), sorted by file_path then pos as the spec
    requires; returns its pyiceberg `DataFile` (content POSITION_DELETES) with full column statistics, so
    that readers can tell from the file_path bounds which data files it may apply to."""
    from pyiceberg.io.pyarrow import (
        compute_statistics_plan,
        data_file_statistics_from_parquet_metadata,
        parquet_path_to_id_mapping,
    )
    from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
    from pyiceberg.schema import Schema
    from pyiceberg.table.locations import load_location_provider
    from pyiceberg.typedef import Record
    from pyiceberg.types import LongType, NestedField, StringType

    # Not pyiceberg's POSITIONAL_DELETE_SCHEMA: 0.12 types `pos` as int, the spec (and the file) as long.
    iceberg_schema = Schema(
        NestedField(FILE_PATH_ID, "file_path", StringType(), required=True),
        NestedField(POS_ID, "pos", LongType(), required=True),
    )

    rows = (
        positions.select(["file_path", "pos"])
        .cast(POSITION_DELETES)
        .sort_by([("file_path", "ascending"), ("pos", "ascending")])
    )
    metadata = table.metadata
    provider = load_location_provider(table_location=metadata.location, table_properties=metadata.properties)
    path = provider.new_data_location(f"{commit_uuid}-deletes.parquet")
    output = table.io.new_output(path)
    with (
        output.create(overwrite=False) as stream,
        pq.ParquetWriter(stream, POSITION_DELETES, compression="zstd") as writer,
    ):
        writer.write_table(rows)
    parquet_metadata = writer.writer.metadata
    statistics = data_file_statistics_from_parquet_metadata(
        parquet_metadata=parquet_metadata,
        stats_columns=compute_statistics_plan(iceberg_schema, {"write.metadata.metrics.default": "full"}),
        parquet_column_mapping=parquet_path_to_id_mapping(iceberg_schema),
    )
    return DataFile.from_args(
        content=DataFileContent.POSITION_DELETES,
        file_path=path,
        file_format=FileFormat.PARQUET,
        partition=Record(),
        file_size_in_bytes=len(output),
        sort_order_id=None,
        spec_id=metadata.default_spec_id,
        equality_ids=None,
        key_metadata=None,
        **statistics.to_serialized_dict(),
    )


# Each commit adds a manifest or two (~5 KB each, most of it the Avro header) that later commits carry over;
# once the parent lists more than this many, a commit lists every file in one manifest per content instead
# (a day of hourly runs left ~50 per table: docs/BENCHMARKS.md, "A week within 1.5x").
MERGE_MANIFESTS_PAST = 8


def row_delta(transaction: Any, *, merge_manifests: bool = False) -> Any:
    """A snapshot producer (context manager: commits on exit) that adds data files and position delete files
    (`append_data_file` takes both) and removes data or delete files (`delete_data_file`), in one snapshot.
    With `merge_manifests`, or when the parent lists more than `MERGE_MANIFESTS_PAST` manifests, the
    snapshot lists every file in one manifest per content."""
    from pyiceberg.manifest import ManifestContent, ManifestEntry, ManifestEntryStatus, ManifestFile, ManifestWriterV2
    from pyiceberg.table.snapshots import Operation
    from pyiceberg.table.update.snapshot import _SnapshotProducer

    class DeletesManifestWriter(ManifestWriterV2):
        """A v2 manifest of delete files: pyiceberg 0.12's writer marks every manifest as DATA."""

        def content(self) -> ManifestContent:
            return ManifestContent.DELETES

        @property
        def _meta(self) -> dict[str, str]:
            return {**super()._meta, "content": "deletes"}

    class RowDelta(_SnapshotProducer["RowDelta"]):
        """Like Iceberg Java's RowDelta: new data and delete files, removed files, one OVERWRITE snapshot.
        Manifests that list no removed file are carried over as they are (as a fast append does)."""

        def _validate_concurrency(self) -> None:
            """None: the lake lock serializes every writer of a lake (lake/lock.py)."""

        def _existing_manifests(self) -> list[ManifestFile]:
            return []  # `_manifests` is overridden whole

        def _deleted_entries(self) -> list[ManifestEntry]:
            return []

        def _writer(self, content: ManifestContent, spec_id: int) -> Any:
            kind = DeletesManifestWriter if content == ManifestContent.DELETES else ManifestWriterV2
            return kind(
                spec=self.spec(spec_id),
                schema=self.schema(),
                output_file=self.new_manifest_output(),
                snapshot_id=self._snapshot_id,
                avro_compression=self._compression,
            )

        def _manifests(self) -> list[ManifestFile]:
            from pyiceberg.manifest import DataFileContent

            metadata = self._transaction.table_metadata
            parent = None if self._parent_snapshot_id is None else metadata.snapshot_by_id(self._parent_snapshot_id)
            if merge_manifests or (parent is not None and len(parent.manifests(self._io)) > MERGE_MANIFESTS_PAST):
                return self._merged()
            spec_id = self._transaction.table_metadata.default_spec_id
            written: list[ManifestFile] = []
            for content, wanted in ((ManifestContent.DATA, True), (ManifestContent.DELETES, False)):
                added = [f for f in self._added_data_files if (f.content == DataFileContent.DATA) == wanted]
                if added:
                    with self._writer(content, spec_id) as writer:
                        for data_file in added:
                            writer.add_entry(self._added(data_file))
                    written.append(writer.to_manifest_file())
            return written + self._carried_over()

        def _added(self, data_file: Any) -> Any:
            """A manifest entry for a file this snapshot adds (its sequence numbers given at commit)."""
            return ManifestEntry.from_args(
                status=ManifestEntryStatus.ADDED,
                snapshot_id=self._snapshot_id,
                sequence_number=None,
                file_sequence_number=None,
                data_file=data_file,
            )

        def _merged(self) -> list[ManifestFile]:
            """One manifest per content and spec: the added files, then the parent's live ones (EXISTING, their
            sequence numbers kept: they decide which delete files apply) or, when removed, DELETED."""
            from pyiceberg.manifest import DataFileContent

            metadata = self._transaction.table_metadata
            parent = None if self._parent_snapshot_id is None else metadata.snapshot_by_id(self._parent_snapshot_id)
            removed = {f.file_path for f in self._deleted_data_files}
            groups: dict[tuple[ManifestContent, int], list[tuple[str, Any]]] = {}
            for data_file in self._added_data_files:
                content = ManifestContent.DATA if data_file.content == DataFileContent.DATA else ManifestContent.DELETES
                groups.setdefault((content, metadata.default_spec_id), []).append(("add", data_file))
            for manifest in [] if parent is None else parent.manifests(io=self._io):
                for entry in manifest.fetch_manifest_entry(io=self._io, discard_deleted=True):
                    kind = "delete" if entry.data_file.file_path in removed else "existing"
                    groups.setdefault((manifest.content, manifest.partition_spec_id), []).append((kind, entry))
            written: list[ManifestFile] = []
            for (content, spec_id), entries in groups.items():
                with self._writer(content, spec_id) as writer:
                    for kind, item in entries:
                        if kind == "add":
                            writer.add_entry(self._added(item))
                        elif kind == "delete":
                            writer.delete(item)
                        else:
                            writer.existing(item)
                written.append(writer.to_manifest_file())
            return written

        def _carried_over(self) -> list[ManifestFile]:
            """The parent's manifests: as they are when they list no removed file, else rewritten with those
            files' entries marked DELETED."""
            metadata = self._transaction.table_metadata
            parent = None if self._parent_snapshot_id is None else metadata.snapshot_by_id(self._parent_snapshot_id)
            if parent is None:
                return []
            removed = {f.file_path for f in self._deleted_data_files}
            kept: list[ManifestFile] = []
            for manifest in parent.manifests(io=self._io):
                if not (manifest.has_added_files() or manifest.has_existing_files()):
                    continue  # only DELETED entries: they were recorded by the parent
                if not removed:
                    kept.append(manifest)
                    continue
                entries = manifest.fetch_manifest_entry(io=self._io, discard_deleted=True)
                if not any(e.data_file.file_path in removed for e in entries):
                    kept.append(manifest)
                    continue
                with self._writer(manifest.content, manifest.partition_spec_id) as writer:
                    for entry in entries:
                        if entry.data_file.file_path in removed:
                            writer.delete(entry)
                        else:
                            writer.existing(entry)
                kept.append(writer.to_manifest_file())
            return kept

    return RowDelta(operation=Operation.OVERWRITE, transaction=transaction, io=transaction._table.io)
