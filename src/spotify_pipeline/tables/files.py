"""A table snapshot's files as DuckDB reads them: its data files, minus the rows its position delete files
(deletes.py) mark deleted.

Every DuckDB reader of a table (transform views, `query`, reports, the dashboard, export, repair) goes
through `TableFiles.sql()`, so each sees exactly the rows pyiceberg's `scan().to_arrow()` sees. A table
without delete files is a plain `read_parquet` (no cost); with some, the data files are read with each
row's file and position and anti-joined with the deleted positions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FILE_COLUMN = "_iceberg_file"  # the data file a row came from (as the metadata records it), in `sql(positions=True)`
POS_COLUMN = "file_row_number"  # its 0-based row in that file: DuckDB's name, and Iceberg's `pos`


@dataclass(frozen=True)
class TableFiles:
    """`data`: the paths DuckDB opens; `recorded`: the same files as the table metadata records them (the
    form delete files name them in: `file://` URIs, `s3://` keys); `deletes`: position delete files."""

    data: list[str] = field(default_factory=list)
    recorded: list[str] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)

    def readable(self) -> list[str]:
        """Every file a reader opens (a sandbox's allow-list)."""
        return self.data + self.deletes

    def sql(self, *, positions: bool = False) -> str:
        """A SELECT of the table's live rows; with `positions`, also `FILE_COLUMN` (the recorded path) and
        `POS_COLUMN` of each row (what a delete file names). Empty `data` is refused by the caller."""
        data = _list(self.data)
        if not self.deletes and not positions:
            return f"SELECT * FROM read_parquet({data})"
        paths = ", ".join(f"({_quote(r)}, {_quote(p)})" for r, p in zip(self.recorded, self.data, strict=True))
        rows = (
            f"SELECT d.* EXCLUDE (_read_path), m.recorded AS {FILE_COLUMN} FROM read_parquet({data}, "
            f"filename = '_read_path', file_row_number = true) d JOIN (VALUES {paths}) m(recorded, path) "
            "ON m.path = d._read_path"
        )
        if self.deletes:
            rows = (
                f"SELECT * FROM ({rows}) r ANTI JOIN read_parquet({_list(self.deletes)}) x "
                f"ON x.file_path = r.{FILE_COLUMN} AND x.pos = r.{POS_COLUMN}"
            )
        return rows if positions else f"SELECT * EXCLUDE ({FILE_COLUMN}, {POS_COLUMN}) FROM ({rows})"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _list(paths: list[str]) -> str:
    return "[" + ", ".join(_quote(p) for p in paths) + "]"
