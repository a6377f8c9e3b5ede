"""History raw parts: one Parquet file per history file of a download, written once by the import and read
by every transform (the import's own, and `transform --rebuild`).

Each row is one element of the file, in element order: `meta` (run, user, file, format) and `body`, which holds
every field of the element as received except the private ones (formats.PRIVATE_FIELDS, never written):
each field the format documents in a column of its own, typed as the import checked it (`RAW_BODY_TYPES`:
text, true/false, whole numbers; `offline_timestamp` and `user_agent`, never checked, as JSON), and every
other field in `body.extra`, one JSON object (NULL when there is none). Nothing is lost: a value that does
not have its field's type is refused at import, so the typed column holds exactly the JSON value received.

A part is built two ways, giving the same rows: from the file itself by DuckDB's typed reader, when the
strict check (strict.py) has passed (`write_typed_part`: one parse, the common case), or from the checked
parse's `export_plays` rows (`write_checked_part`: files with unknown fields).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow.parquet as pq

from ..tables.files import sql_path, sql_string
from .formats import FORMATS, PRIVATE_FIELDS, HistoryFormat
from .parse import FIELD_KINDS, INSTANT, MINUTE, MINUTE_FORMAT, TS_FORMAT, ParsedFile
from .reader import ExportFile

# DuckDB imported where used: the check's forkserver imports this module, and its workers never use DuckDB
# (~0.1 CPU s and ~25 MiB less there; workers.py)
if TYPE_CHECKING:
    import duckdb

PART_SUFFIX = ".parquet"
# zstd (DuckDB's default level): 1M plays, 63 parts, 744 MiB of JSON -> about 30 MB; snappy was larger for
# no measurable saving in time.
PART_COMPRESSION = "zstd"

_SQL_TYPES = {"text": "VARCHAR", "flag": "BOOLEAN", "count": "BIGINT", INSTANT: "VARCHAR", MINUTE: "VARCHAR"}


def _field_type(name: str) -> str:
    for kinds in FIELD_KINDS.values():
        if name in kinds:
            return _SQL_TYPES[kinds[name]]
    return "JSON"  # documented but never checked: kept as the JSON value it is


# Every documented field of every format, private ones left out, typed; then `extra`.
_DOCUMENTED = sorted({f for fmt in FORMATS.values() for f in fmt.known} - set(PRIVATE_FIELDS))
RAW_BODY_TYPES: dict[str, str] = {name: _field_type(name) for name in _DOCUMENTED} | {"extra": "JSON"}
RAW_META_FIELDS = ("run_id", "fetched_at", "user_id", "file", "format")


def kept_fields(fmt: HistoryFormat) -> list[str]:
    """The documented fields of `fmt` a part keeps in their own columns (the format's, less the private)."""
    return sorted(fmt.known - set(PRIVATE_FIELDS))


def _meta_sql(meta: dict[str, str]) -> str:
    return "{" + ", ".join(f"{sql_string(k)}: {sql_string(meta[k])}" for k in RAW_META_FIELDS) + "}"


def _body_sql(fmt: HistoryFormat, value: dict[str, str]) -> str:
    """`body` with every field of RAW_BODY_TYPES: `value[f]` for the format's fields, typed NULL otherwise."""
    kept = set(kept_fields(fmt))
    parts = [
        f"{sql_string(f)}: " + (value[f] if f in kept or f == "extra" else f"NULL::{t}")
        for f, t in RAW_BODY_TYPES.items()
    ]
    return "{" + ", ".join(parts) + "}"


def _copy(con: duckdb.DuckDBPyConnection, select: str, path: Path) -> None:
    con.execute(f"COPY ({select}) TO {sql_string(str(path))} (FORMAT parquet, COMPRESSION {PART_COMPRESSION})")


def write_typed_part(
    con: duckdb.DuckDBPyConnection, source: Path, fmt: HistoryFormat, meta: dict[str, str], path: Path
) -> None:
    """The part of a file the strict check accepted, straight from DuckDB's typed reader. The time field's
    pattern is the one thing left to check; a time that does not parse raises duckdb.Error (the caller then
    has the checked parse name the element). Private fields are not even read."""
    kinds = FIELD_KINDS[fmt.name]
    columns = "{" + ", ".join(f"{sql_string(f)}: {sql_string(RAW_BODY_TYPES[f])}" for f in kept_fields(fmt)) + "}"
    value = {f: f'"{f}"' for f in kept_fields(fmt)} | {"extra": "NULL::JSON"}
    for f, kind in kinds.items():
        if kind in (INSTANT, MINUTE):
            pattern = TS_FORMAT if kind == INSTANT else MINUTE_FORMAT
            value[f] = f"""CASE WHEN try_strptime("{f}", '{pattern}') IS NULL THEN error('bad time') ELSE "{f}" END"""
    _copy(
        con,
        f"SELECT {_meta_sql(meta)} AS meta, {_body_sql(fmt, value)} AS body "
        f"FROM read_json({sql_path(str(source))}, format='array', columns={columns}, auto_detect=false, "
        "maximum_object_size=16777216)",
        path,
    )


def write_checked_part(
    con: duckdb.DuckDBPyConnection, idx: int, fmt: HistoryFormat, meta: dict[str, str], path: Path
) -> None:
    """The part of file `idx` from the checked parse's `export_plays` (each element's JSON, private fields
    already gone), in element order: documented fields typed (their values were checked), the rest in `extra`."""
    kept = kept_fields(fmt)
    structure = json.dumps({f: RAW_BODY_TYPES[f] for f in kept})
    remove = json.dumps(dict.fromkeys(kept))  # a merge patch deleting the documented fields leaves the others
    value = {f: f'b."{f}"' for f in kept}
    value["extra"] = f"CASE WHEN json_merge_patch(j, {sql_string(remove)})::VARCHAR = '{{}}' THEN NULL::JSON "
    value["extra"] += f"ELSE json_merge_patch(j, {sql_string(remove)}) END"
    _copy(
        con,
        f"SELECT {_meta_sql(meta)} AS meta, {_body_sql(fmt, value)} AS body "
        f"FROM (SELECT i, j, json_transform(j, {sql_string(structure)}) AS b FROM export_plays "
        f"WHERE file_idx = {int(idx)}) ORDER BY i",
        path,
    )


def typed_part(
    con: duckdb.DuckDBPyConnection, source: ExportFile, plays: int, file_meta: dict[str, str], part: Path
) -> ParsedFile | None:
    """The part of a strictly checked file by DuckDB's typed reader (Arrow declined a value); None when a
    time does not parse: the checked parse then names it."""
    import duckdb  # here, not at the top: see the imports

    if source.fmt is None:  # only strictly checked files, whose format is known, come here
        return None
    try:
        write_typed_part(con, source.path, source.fmt, file_meta, part)
    except duckdb.Error:
        part.unlink(missing_ok=True)
        return None
    return ParsedFile(source, source.fmt, plays, [], part)


def earliest_play(part: Path) -> str:
    """The earliest end time in a raw part as written (`ts` or `endTime`, ISO text), from the Parquet
    statistics of its row groups; "" when it has none."""
    metadata = pq.ParquetFile(part).metadata
    times = {"body.ts", "body.endTime"}
    found = [
        str(column.statistics.min)
        for group in range(metadata.num_row_groups)
        for column in map(metadata.row_group(group).column, range(metadata.num_columns))
        if column.path_in_schema in times and column.statistics is not None and column.statistics.has_min_max
    ]
    return min(found, default="")
