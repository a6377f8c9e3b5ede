"""A table snapshot's files as DuckDB reads them: its data files, minus the rows its position delete files
(deletes.py) mark deleted.

Every DuckDB reader of a table (transform views, `query`, reports, the dashboard, export, repair) goes
through `TableFiles.sql()`, so each sees exactly the rows pyiceberg's `scan().to_arrow()` sees. A table
without delete files is a plain `read_parquet` (no cost). With some, every data file is still read in one
`read_parquet`, and a row is live when its number is NOT IN the deleted ones: row r of the i-th file is
i * stride + r, from DuckDB's virtual columns `file_index` (the file's place in the list) and
`file_row_number`. NOT IN is a mark join, whose hash table DuckDB always builds on the deleted positions; an
anti join it may build on the data files' rows, every column with them (the reports' CPU 16% higher at
100k), and a match on the file name costs a string per row (docs/BENCHMARKS.md, "Reads after a week of runs").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import LakeError

FILE_COLUMN = "_iceberg_file"  # the data file a row came from (as the metadata records it), in `sql(positions=True)`
POS_COLUMN = "file_row_number"  # its 0-based row in that file: DuckDB's name, and Iceberg's `pos`


@dataclass(frozen=True)
class TableFiles:
    """`data`: the paths DuckDB opens; `recorded`: the same files as the table metadata records them (the
    form delete files name them in: `file://` URIs, `s3://` keys); `deletes`: position delete files;
    `marked`: the data files (paths DuckDB opens) some delete file applies to; `records`: the data files'
    records (deleted ones included)."""

    data: list[str] = field(default_factory=list)
    recorded: list[str] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    marked: set[str] = field(default_factory=set)
    records: list[int] = field(default_factory=list)

    def readable(self) -> list[str]:
        """Every file a reader opens (a sandbox's allow-list)."""
        return self.data + self.deletes

    def sql(self, *, positions: bool = False) -> str:
        """A SELECT of the table's live rows; with `positions`, also `FILE_COLUMN` (the recorded path) and
        `POS_COLUMN` of each row (what a delete file names). Empty `data` is refused by the caller.
        Without `positions`: the live rows, every data file in one scan (module docstring)."""
        if positions:
            paths = self._paths(self.data)
            data = sql_paths(self.data)
            rows = (
                f"SELECT d.* EXCLUDE (_read_path), m.recorded AS {FILE_COLUMN} FROM read_parquet({data}, "
                f"filename = '_read_path', file_row_number = true) d JOIN (VALUES {paths}) m(recorded, path) "
                "ON m.path = d._read_path"
            )
            if self.deletes:
                rows = (
                    f"SELECT * FROM ({rows}) r ANTI JOIN read_parquet({sql_paths(self.deletes)}) x "
                    f"ON x.file_path = r.{FILE_COLUMN} AND x.pos = r.{POS_COLUMN}"
                )
            return rows
        if not self.marked:
            return f"SELECT * FROM read_parquet({sql_paths(self.data)})"
        # Row r of the i-th file is number i * stride + r: no two rows of the snapshot share one.
        stride = max(self.records) + 1
        recorded = dict(zip(self.data, self.recorded, strict=True))
        marked = ", ".join(
            f"({sql_string(recorded[p])}, {i * stride}, {records})"
            for i, (p, records) in enumerate(zip(self.data, self.records, strict=True))
            if p in self.marked
        )
        deleted = (  # the number of each deleted row of a data file of this snapshot (a pos past its rows: none)
            f"SELECT CAST(m.base AS BIGINT) + x.pos FROM read_parquet({sql_paths(self.deletes)}) x "
            f"JOIN (VALUES {marked}) m(recorded, base, records) ON x.file_path = m.recorded WHERE x.pos < m.records"
        )
        return (
            f"SELECT d.* FROM read_parquet({sql_paths(self.data)}) d "
            f"WHERE CAST(d.file_index AS BIGINT) * {stride} + d.file_row_number NOT IN ({deleted})"
        )

    def _paths(self, data: list[str]) -> str:
        recorded = dict(zip(self.data, self.recorded, strict=True))
        return ", ".join(f"({sql_string(recorded[p])}, {sql_string(p)})" for p in data)


def files_of_tasks(name: str, tasks: Iterable[Any], owns: Callable[[str], bool]) -> TableFiles:
    """The files of table `name`'s pyiceberg scan tasks (a data file each, with the delete files that apply
    to it); every one must lie inside the lake (`owns`)."""
    files = TableFiles()
    deletes: dict[str, None] = {}
    for task in tasks:
        for path in [task.file.file_path, *(d.file_path for d in task.delete_files)]:
            if not owns(path):
                raise LakeError(f"table {name} lists a file outside the lake: {path}")
        files.recorded.append(task.file.file_path)
        files.records.append(int(task.file.record_count))
        files.data.append(_local(task.file.file_path))
        deletes.update((_local(d.file_path), None) for d in sorted(task.delete_files, key=lambda d: d.file_path))
        if task.delete_files:
            files.marked.add(files.data[-1])
    files.deletes.extend(deletes)
    return files


def _local(path: str) -> str:
    """The path DuckDB opens for a recorded one: a local path for `file://`, as is for `s3://`."""
    return path.removeprefix("file://")


GLOB_CHARACTERS = "[*?"  # what DuckDB's file readers treat as a pattern in every path they are given


def sql_string(text: str) -> str:
    """`text` as a SQL string literal. Not for a file a reader opens: that is `sql_path`."""
    return "'" + text.replace("'", "''") + "'"


def glob_escaped(path: str) -> str:
    """`path` as a glob pattern that matches only itself: each glob character a one-character class
    (`[` -> `[[]`, `*` -> `[*]`, `?` -> `[?]`), which DuckDB and fsspec (s3://) both read so."""
    return "".join(f"[{c}]" if c in GLOB_CHARACTERS else c for c in path)


def glob_unescaped(pattern: str) -> str | None:
    """The one path `pattern` names when each of its glob characters is escaped as `glob_escaped` writes
    it (a path without any is itself); None for a pattern that matches other paths too."""
    out, i = [], 0
    while i < len(pattern):
        if pattern[i] == "[" and pattern[i + 1 : i + 2] in tuple(GLOB_CHARACTERS) and pattern[i + 2 : i + 3] == "]":
            out.append(pattern[i + 1])
            i += 3
        elif pattern[i] in GLOB_CHARACTERS:
            return None
        else:
            out.append(pattern[i])
            i += 1
    return "".join(out)


def sql_path(path: str) -> str:
    """The SQL literal under which DuckDB's readers (`read_parquet`, `read_json`, ...) open exactly the file
    `path`. They glob every path: unescaped, a lake in `x[1]/` read the files of `x1/`, and `*` or `?` in a
    folder's name read several folders' files. (DuckDB 2.0 still lists the folder holding the first escaped
    character to resolve it: one listing, no recursion.) Not for COPY ... TO, which writes to the literal
    path."""
    return sql_string(glob_escaped(path))


def sql_paths(paths: Iterable[str]) -> str:
    """A SQL list of `sql_path` literals: the files DuckDB reads in one scan."""
    return "[" + ", ".join(sql_path(p) for p in paths) + "]"
