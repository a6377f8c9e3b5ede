"""The raw part of a strictly checked file built in Arrow from msgspec's decode: the file parsed once.

The strict check (strict.py) decodes every element into a typed struct anyway; DuckDB's typed reader then
parsed the same JSON a second time to write the part (raw_parts.py `write_typed_part`: 2.3 of the 4.2 CPU s
of checking and writing the parts of 1M plays). Here each field's values become one Arrow column and the
part is written by pyarrow, with exactly the columns and values DuckDB's part has (raw_parts.py
`RAW_BODY_TYPES`): a value this cannot render as DuckDB does makes it decline (None), and the caller writes
the part with DuckDB as before. It declines:
- a time (`ts`, `endTime`) not in its exact pattern (`2024-01-31T23:59:07Z`, `2024-01-31 23:59`) or not a
  day of the calendar: DuckDB's `try_strptime` decides those (and the checked parse names a bad one);
- a field kept as JSON (`offline_timestamp`, `user_agent`) whose value is not null, a whole number of at most
  18 digits or a string without escapes: DuckDB re-renders other JSON (`1.50`, objects, escapes).
"""

from __future__ import annotations

import operator
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .formats import HistoryFormat
from .parse import COUNT, FIELD_KINDS, FLAG, INSTANT, MINUTE, TEXT
from .raw_parts import PART_COMPRESSION, RAW_BODY_TYPES, RAW_META_FIELDS, kept_fields

_ARROW_TYPES = {"VARCHAR": pa.string(), "BOOLEAN": pa.bool_(), "BIGINT": pa.int64(), "JSON": pa.json_()}
_KIND_TYPES = {TEXT: pa.string(), FLAG: pa.bool_(), COUNT: pa.int64()}
# The patterns DuckDB's reader is asked for (parse.py TS_FORMAT, MINUTE_FORMAT), digit by digit.
_DAY = r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])"
_TIME_PATTERNS = {
    INSTANT: (rf"^{_DAY}T([01]\d|2[0-3]):[0-5]\d:[0-5]\dZ$", pa.timestamp("s", tz="UTC")),
    MINUTE: (rf"^{_DAY} ([01]\d|2[0-3]):[0-5]\d$", pa.timestamp("s")),
}
# RE2's `$` is the end of the text (a raw value has no trailing newline anyway), `\d` ASCII digits.
_JSON_AS_IS = r'^(null|-?(0|[1-9]\d{0,17})|"[^"\\]*")$'
_NULL_BYTES = b"null"
_NULL = msgspec.Raw(_NULL_BYTES)


class _Declined(Exception):
    """A value this module would not render exactly as DuckDB's reader does."""


def _times(values: Iterator[Any], rows: int, kind: str) -> pa.Array:
    pattern, timestamp = _TIME_PATTERNS[kind]
    column = pa.array(values, pa.string(), size=rows)
    if column.null_count or not pc.all(pc.match_substring_regex(column, pattern)).as_py():
        raise _Declined
    try:
        column.cast(timestamp)  # the calendar: no 2024-02-30 (Arrow's ISO reader refuses it)
    except pa.ArrowInvalid:
        raise _Declined from None
    return column


def _json(values: list[Any]) -> pa.Array:
    """A field kept as JSON (`offline_timestamp`, `user_agent`): its raw values as text, NULL for `null`.
    Vectorized (a Python loop with a regex per value was ~0.3 CPU s per 1M plays): all null, the usual case,
    is one count; otherwise the bytes are matched in Arrow."""
    if values.count(_NULL) == len(values):
        return pa.nulls(len(values), pa.json_())
    raw = pa.array(list(map(bytes, values)), pa.binary())
    if not pc.all(pc.match_substring_regex(raw, _JSON_AS_IS)).as_py():
        raise _Declined
    text = pc.if_else(pc.equal(raw, _NULL_BYTES), pa.scalar(None, pa.binary()), raw).cast(pa.string())
    return pa.ExtensionArray.from_storage(pa.json_(), text)


def _column(kind: str | None, values: Iterator[Any], rows: int) -> pa.Array:
    """One field's column from its values (an iterator of `rows`: Arrow reads it without a list between)."""
    if kind in _TIME_PATTERNS:
        return _times(values, rows, kind)
    if kind is None:  # documented but never checked: kept as its JSON value
        return _json(list(values))
    return pa.array(values, _KIND_TYPES[kind], size=rows)


def write_arrow_part(plays: list[msgspec.Struct], fmt: HistoryFormat, meta: dict[str, str], path: Path) -> bool:
    """Write the part of a file whose elements the strict check decoded (`plays`, in element order), as
    DuckDB's typed reader would have (raw_parts.py `write_typed_part`); False, having written nothing, when
    a value is one it declines (module docstring)."""
    rows = len(plays)
    kinds = FIELD_KINDS[fmt.name]
    kept = set(kept_fields(fmt))
    body: list[pa.Array] = []
    try:
        for name, sql_type in RAW_BODY_TYPES.items():
            if name in kept:
                body.append(_column(kinds.get(name), map(operator.attrgetter(name), plays), rows))
            else:  # another format's field, or `extra` (the strict check refuses unknown fields): NULL
                body.append(pa.nulls(rows, _ARROW_TYPES[sql_type]))
    except _Declined:
        return False
    meta_columns = [pa.repeat(pa.scalar(meta[k], pa.string()), rows) for k in RAW_META_FIELDS]
    table = pa.table(
        {
            "meta": pa.StructArray.from_arrays(meta_columns, list(RAW_META_FIELDS)),
            "body": pa.StructArray.from_arrays(body, list(RAW_BODY_TYPES)),
        }
    )
    pq.write_table(table, path, compression=PART_COMPRESSION)
    return True
