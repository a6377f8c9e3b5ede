"""Parse and validate the history files of a download in DuckDB, with the private fields already dropped.

This is the checked parse, for the files the fast strict check (strict.py) does not accept: it names what is
wrong, or accepts a file with fields its format does not document. Each such file is read by DuckDB's JSON
reader into a temp table `export_plays(file_idx, i, is_object, j)`: one row per element, `j` the element as
JSON minus `PRIVATE_FIELDS` (removed with a JSON merge patch, so every other field stays as received).
Everything is checked before anything is written: the JSON is whole, the top level is an array of objects,
each element has its format's required fields with usable types. A file that fails is an `InputError`
naming it and what is wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError
from ..tables.files import sql_path, sql_string
from .formats import FORMATS, PRIVATE_FIELDS, HistoryFormat, format_by_keys
from .reader import ExportFile

# DuckDB imported where used: the check's forkserver imports this module, and its workers never use DuckDB
# (~0.1 CPU s and ~25 MiB less there; workers.py)
if TYPE_CHECKING:
    import duckdb

# How each field the tables read must look (anything else is refused at import, so the transform never is).
TEXT, FLAG, COUNT, INSTANT, MINUTE = "text", "flag", "count", "instant", "minute"
FIELD_KINDS: dict[str, dict[str, str]] = {
    "extended": {
        "ts": INSTANT,
        "ms_played": COUNT,
        **dict.fromkeys(
            """platform conn_country master_metadata_track_name master_metadata_album_artist_name
            master_metadata_album_album_name spotify_track_uri episode_name episode_show_name spotify_episode_uri
            audiobook_title audiobook_uri audiobook_chapter_uri audiobook_chapter_title reason_start reason_end
            username""".split(),
            TEXT,
        ),
        **dict.fromkeys(("shuffle", "skipped", "offline", "incognito_mode"), FLAG),
    },
    "account_music": {"endTime": MINUTE, "msPlayed": COUNT, "artistName": TEXT, "trackName": TEXT},
    "account_podcast": {"endTime": MINUTE, "msPlayed": COUNT, "podcastName": TEXT, "episodeName": TEXT},
}
FIELD_KINDS["legacy"] = FIELD_KINDS["extended"]
TS_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
MINUTE_FORMAT = "%Y-%m-%d %H:%M"
_DROP_PRIVATE = json.dumps(dict.fromkeys(PRIVATE_FIELDS))


@dataclass
class ParsedFile:
    source: ExportFile
    fmt: HistoryFormat
    plays: int
    unknown_fields: list[str] = field(default_factory=list)
    part: Path | None = None  # its raw part (raw_parts.py), written to the import's scratch folder


def _bad(kind: str, value: str) -> str:
    """SQL true where `value` (one field, extracted as JSON; SQL NULL when the field is missing) does not look
    like `kind`. The element is parsed once per row (`json_extract` with every path), not once per check."""
    typ = f"coalesce(json_type({value}), 'NULL')"
    text = f"json_extract_string({value}, '$')"
    if kind == TEXT:
        return f"{typ} NOT IN ('VARCHAR', 'NULL')"
    if kind == FLAG:
        return f"{typ} NOT IN ('BOOLEAN', 'NULL')"
    if kind == COUNT:  # a whole number >= 0 (JSON integers that fit BIGINT)
        return f"({value} IS NULL OR {typ} <> 'UBIGINT' OR try_cast({text} AS BIGINT) IS NULL)"
    if kind == INSTANT:
        return f"({typ} <> 'VARCHAR' OR try_strptime({text}, '{TS_FORMAT}') IS NULL)"
    return f"({typ} <> 'VARCHAR' OR try_strptime({text}, '{MINUTE_FORMAT}') IS NULL)"


_WHAT = {
    TEXT: "a string or null",
    FLAG: "true, false or null",
    COUNT: "a whole number of milliseconds >= 0",
    INSTANT: "a UTC time like 2024-01-31T23:59:07Z",
    MINUTE: "a time like 2024-01-31 23:59",
}


def begin(con: duckdb.DuckDBPyConnection) -> None:
    """Create the empty `export_plays` the checked parse fills (one file at a time, `check_file`)."""
    con.execute("CREATE OR REPLACE TEMP TABLE export_plays (file_idx INTEGER, i BIGINT, is_object BOOLEAN, j JSON)")


def check_file(con: duckdb.DuckDBPyConnection, idx: int, source: ExportFile) -> ParsedFile:
    """Load file `idx` into `export_plays` and check it; raise InputError naming the file, and the element
    and field, when it is bad. Elements are numbered in file order: the file is one JSON array, which DuckDB
    reads on one thread, and the connection keeps insertion order (tests/history/test_raw_parts.py checks an
    element thousands of rows deep)."""
    import duckdb  # here, not at the top: see the imports

    try:
        con.execute(
            f"""INSERT INTO export_plays
            SELECT {idx}, row_number() OVER (), json_type(json) = 'OBJECT',
                   json_merge_patch(json, {sql_string(_DROP_PRIVATE)})
            FROM read_json_objects({sql_path(str(source.path))}, format='array', maximum_object_size=16777216)"""
        )
    except duckdb.Error as exc:
        raise InputError(f"{source.name}: {_json_problem(str(exc), str(source.path))}", hint=_NOTHING) from None
    plays, not_object = con.execute(
        "SELECT count(*), min(i) FILTER (WHERE NOT is_object) FROM export_plays WHERE file_idx = ?",
        [idx],
    ).fetchall()[0]
    if not_object is not None:
        raise InputError(f"{source.name}: unknown JSON shape: element {not_object} is not an object", hint=_NOTHING)
    keys = {
        k
        for (k,) in con.execute(
            "SELECT DISTINCT unnest(json_keys(j)) FROM export_plays WHERE file_idx = ?", [idx]
        ).fetchall()
    }
    fmt = source.fmt
    if fmt is None:
        first = con.execute("SELECT json_keys(j) FROM export_plays WHERE file_idx = ? AND i = 1", [idx]).fetchall()
        fmt = format_by_keys(set(first[0][0]) if first else set())
        if fmt is None:
            raise InputError(
                f"{source.name}: unknown JSON shape: not a Spotify streaming history file"
                + (f" (first element has {', '.join(sorted(first[0][0])[:6])})" if first else " (empty)"),
                hint=_NOTHING,
            )
    _check_fields(con, idx, source, fmt)
    return ParsedFile(source, fmt, plays, sorted(keys - fmt.known))


_NOTHING = "nothing was imported"


def _json_problem(message: str, path: str) -> str:
    first = message.splitlines()[0].replace("Invalid Input Error: ", "").replace(f' in file "{path}"', "")
    if "Expected top-level JSON array" in first:
        return "unknown JSON shape: not a JSON array of plays"
    return f"truncated or malformed JSON ({first.rstrip('. ')})"


def _check_fields(con: duckdb.DuckDBPyConnection, idx: int, source: ExportFile, fmt: HistoryFormat) -> None:
    kinds = FIELD_KINDS[fmt.name]
    checks = list(kinds.items())
    required = sorted(fmt.required)
    paths = sorted(set(kinds) | set(required))
    slot = {f: n + 1 for n, f in enumerate(paths)}  # DuckDB lists are 1-based
    path_list = "[" + ", ".join(sql_string(f"$.{f}") for f in paths) + "]"
    missing = ", ".join(f"min(i) FILTER (WHERE v[{slot[f]}] IS NULL)" for f in required)
    columns = ", ".join(f"min(i) FILTER (WHERE {_bad(kind, f'v[{slot[f]}]')})" for f, kind in checks)
    row = con.execute(
        f"SELECT {missing}, {columns} FROM (SELECT i, json_extract(j, {path_list}) AS v "
        "FROM export_plays WHERE file_idx = ?)",
        [idx],
    ).fetchall()[0]
    for f, element in zip(required, row[: len(required)], strict=True):
        if element is not None:
            raise InputError(
                f"{source.name}: unknown JSON shape: element {element} has no `{f}` ({fmt.name} history)",
                hint=_NOTHING,
            )
    for (f, kind), element in zip(checks, row[len(required) :], strict=True):
        if element is not None:
            raise InputError(
                f"{source.name}: element {element}: `{f}` is not {_WHAT[kind]}",
                hint=_NOTHING,
            )


def usernames(con: duckdb.DuckDBPyConnection, files: list[ExportFile]) -> list[str]:
    """The usernames in the legacy files (and in files recognised by their keys), reading only that field:
    who the history belongs to is known before any file is parsed whole. A file that does not read here is
    left to the checks (strict.py, then `check_file`), which name what is wrong with it."""
    import duckdb  # here, not at the top: see the imports

    names: set[str] = set()
    for source in files:
        if source.fmt is not None and source.fmt.name != "legacy":
            continue
        try:
            rows = con.execute(
                f"SELECT DISTINCT username FROM read_json({sql_path(str(source.path))}, format='array', "
                "columns={'username': 'VARCHAR'}, auto_detect=false, maximum_object_size=16777216) "
                "WHERE username <> ''"
            ).fetchall()
        except duckdb.Error:
            continue
        names.update(r[0] for r in rows if r[0])
    return sorted(names)


__all__ = ["FORMATS", "ParsedFile", "begin", "check_file", "usernames"]
