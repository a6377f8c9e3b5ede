"""The fast strict check of a history file: one msgspec decode of the whole file against its format's fields.

msgspec decodes strictly (no `"12"` for a number, no `1.5` for a whole number, no `5` for a string) and,
with `forbid_unknown_fields`, refuses any key the format does not document: a file it accepts has exactly
the shape and types `parse.FIELD_KINDS` asks for, so DuckDB's typed reader (which would cast leniently) can
then read it without changing any value. Whatever it refuses goes to the checked parse in parse.py, which
names the problem (element and field) or accepts it (unknown fields, kept and reported): this check only
ever says "certainly fine" or "look closer", so the two paths cannot disagree on what is accepted.

Measured at 1M plays (744 MiB): 1.2 CPU s, against 11.4 s for the checked parse (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import functools
import mmap
from pathlib import Path
from typing import Annotated, Any

import msgspec

from .formats import HistoryFormat
from .parse import COUNT, FIELD_KINDS, FLAG, TEXT

_WHOLE = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]  # a BIGINT >= 0
_TYPES: dict[str, Any] = {TEXT: str | None, FLAG: bool | None, COUNT: _WHOLE}


@functools.cache
def _decoder(fmt: HistoryFormat) -> msgspec.json.Decoder[Any]:
    """A decoder of a JSON array of the format's elements: required fields without a default, checked fields
    typed (times as strings: their pattern is checked by the typed read), other documented fields (private
    ones, `offline_timestamp`, `user_agent`) accepted as any JSON value, unknown fields refused."""
    kinds = FIELD_KINDS[fmt.name]
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for name in sorted(fmt.known, key=lambda f: f not in fmt.required):  # required (no default) first
        typ = _TYPES.get(kinds.get(name, ""), str) if name in kinds else msgspec.Raw
        if name in fmt.required or kinds.get(name) == COUNT:  # a count is never null or missing
            fields.append((name, typ))
        else:
            fields.append((name, typ, None if name in kinds else msgspec.Raw(b"null")))
    element = msgspec.defstruct(f"Strict_{fmt.name}", fields, forbid_unknown_fields=True, gc=False, rename=None)
    return msgspec.json.Decoder(list[element])  # type: ignore[valid-type]


def strict_plays(path: Path, fmt: HistoryFormat) -> list[msgspec.Struct] | None:
    """The file's elements, decoded, when it decodes strictly as `fmt` with no unknown field, else None
    (malformed, another shape, a wrong type, an unknown field: for the checked parse to decide). Each
    element is a struct of the format's fields (unchecked ones as `msgspec.Raw`): arrow_part.py makes the
    raw part of them, so the file is parsed once."""
    return strict_decode(path.read_bytes(), fmt)


def strict_decode(data: bytes | mmap.mmap, fmt: HistoryFormat) -> list[msgspec.Struct] | None:
    """`strict_plays` of a file's bytes already read or mapped (workers.py maps them once, to hash and
    decode; the `msgspec.Raw` values point into them)."""
    try:
        plays: list[msgspec.Struct] = _decoder(fmt).decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    return plays
