"""Stored responses the typed read cannot take are set aside, not fatal (they go to `rejected_records`).

The common path is unchanged: DuckDB's JSON reader parses each raw file into typed structs and stops at the
first value it cannot convert (an object where a number belongs, text where an object belongs, ...). Only
then, and only for the files of the batch that failed, `Quarantine.screen` finds the odd lines with the
same reader (bisecting the file's lines, so the verdict is exactly the reader's, at a cost of about
log2(lines) re-reads per odd line), writes the file's other lines to a local copy that the batch reads
instead, and keeps one `Rejected` per odd line: raw file, line, entity, playlist, field, error.

A line is one API response: an item page set aside makes its playlist's extraction in that run incomplete,
so the playlist keeps its previously published positions (see `build_batch`).
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import duckdb

from .raw import BODY_TYPES, META, RawFile, Shape, raw_relation

# What a failed typed read raises: the errors worth screening a batch's files for.
READ_ERRORS = (duckdb.InvalidInputException, duckdb.ConversionException)
_LINE_ERROR = re.compile(r"in line \d+: (.*)")
_INTEGERS = {"INTEGER": 2**31, "BIGINT": 2**63}


@dataclass(frozen=True)
class Rejected:
    """One stored response set aside: where it is, what it is, and what the typed read said."""

    raw_key: str
    line_number: int  # 1-based, in the decompressed part file
    entity: str
    run_id: str | None
    playlist_id: str | None
    user_id: str | None
    field: str | None  # e.g. body.items[3].item.duration_ms; None when not pinned down
    error: str


class Quarantine:
    """Screens raw files whose typed read failed; collects the lines set aside. `read(uri)` returns a raw
    file's compressed bytes and `key(uri)` its key in the lake; cleaned copies go to a temp folder."""

    def __init__(self, read: Callable[[str], bytes], key: Callable[[str], str]) -> None:
        self.read = read
        self.key = key
        self.rejected: list[Rejected] = []
        self._folder: Path | None = None

    def reject_extraction(self, manifest_key: str, run_id: str, playlist_id: str, error: str) -> None:
        """Set aside a playlist's whole extraction in a run (its pages read, but not as one version of it).
        Named by the run's manifest, which declared it complete; line 0 stands for no single line."""
        self.rejected.append(Rejected(manifest_key, 0, "playlist_items", run_id, playlist_id, None, "positions", error))

    def screen(self, con: duckdb.DuckDBPyConnection, files: Sequence[RawFile]) -> list[RawFile] | None:
        """`files` with every line the typed read rejects left out (cleaned files are local copies), or
        None when no line is odd (the failure was something else: let it surface)."""
        out, found = [], False
        for raw_file in files:
            if _read_error(con, raw_file.entity, [raw_file.uri]) is None:
                out.append(raw_file)
                continue
            lines = gzip.decompress(self.read(raw_file.uri)).splitlines()
            try:
                records = [json.loads(line) if line.strip() else None for line in lines]
            except ValueError:
                return None  # not a record of an odd shape but a corrupted file: that stays fatal
            odd = self._odd_lines(con, raw_file.entity, lines)
            if not odd:
                return None
            found = True
            for index, error in odd:
                self.rejected.append(
                    _rejected(self.key(raw_file.uri), index + 1, raw_file.entity, records[index], error)
                )
            odd_indexes = {index for index, _ in odd}
            kept = [line for index, line in enumerate(lines) if index not in odd_indexes]
            out.append(replace(raw_file, uri=self._write(kept)))
        return out if found else None

    def _odd_lines(self, con: duckdb.DuckDBPyConnection, entity: str, lines: list[bytes]) -> list[tuple[int, str]]:
        """(index, error) of each line the typed read rejects, by bisection: a failing range is split until
        it is one line; a range that reads is done."""
        odd: list[tuple[int, str]] = []
        ranges = [(0, len(lines))]
        while ranges:
            low, high = ranges.pop()
            error = _read_error(con, entity, [self._write(lines[low:high])])
            if error is None:
                continue
            if high - low == 1:
                odd.append((low, error))
                continue
            middle = (low + high) // 2
            ranges += [(low, middle), (middle, high)]
        return sorted(odd)

    def _write(self, lines: list[bytes]) -> str:
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="spotify-pipeline-quarantine-"))
        path = self._folder / f"part-{len(list(self._folder.iterdir())):06d}.jsonl.gz"
        path.write_bytes(gzip.compress(b"".join(line + b"\n" for line in lines), compresslevel=1))
        return str(path)

    def close(self) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None


def _read_error(con: duckdb.DuckDBPyConnection, entity: str, uris: list[str]) -> str | None:
    """The typed read's error for these files (every field of the entity's shape converted), or None."""
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE _screened AS SELECT meta, body FROM {raw_relation(entity, uris)}")
    except READ_ERRORS as exc:
        first = str(exc).strip().splitlines()[0]
        match = _LINE_ERROR.search(first)
        return match.group(1) if match else first
    finally:
        con.execute("DROP TABLE IF EXISTS _screened")
    return None


def _rejected(key: str, line_number: int, entity: str, record: Any, error: str) -> Rejected:
    meta = record.get("meta") if isinstance(record, dict) else None
    meta = meta if isinstance(meta, dict) else {}

    def text(name: str) -> str | None:
        value = meta.get(name)
        return value if isinstance(value, str) else None

    field = None
    if isinstance(record, dict):
        field = _misfit(record.get("meta"), META, "meta") or _misfit(record.get("body"), BODY_TYPES[entity], "body")
    return Rejected(key, line_number, entity, text("run_id"), text("playlist_id"), text("user_id"), field, error)


def _misfit(value: Any, shape: Shape | list[Any] | str, path: str) -> str | None:
    """The first path at which `value` cannot take `shape` (best effort, for people: the reader decides)."""
    if value is None:
        return None
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return path
        for name, kind in shape.items():
            found = _misfit(value.get(name), kind, f"{path}.{name}")
            if found:
                return found
        return None
    if isinstance(shape, list):
        if not isinstance(value, list):
            return path
        for index, element in enumerate(value):
            found = _misfit(element, shape[0], f"{path}[{index}]")
            if found:
                return found
        return None
    if shape == "VARCHAR":
        return None
    if isinstance(value, dict | list):
        return path
    if shape in _INTEGERS and not isinstance(value, bool):
        try:
            number = float(value)
        except ValueError:
            return path
        return path if abs(number) >= _INTEGERS[shape] else None
    if shape == "BOOLEAN" and isinstance(value, str) and value.lower() not in ("true", "false", "t", "f", "1", "0"):
        return path
    return None
