"""Parse and validate the history files of a download in DuckDB, with the private fields already dropped.

Each file is read once by DuckDB's JSON reader into a temp table `export_plays(file_idx, i, is_object, j)`: one row per
element, `j` the element as JSON minus `PRIVATE_FIELDS` (removed with a JSON merge patch, so every other
field stays as received). Everything is checked before anything is written: the JSON is whole, the top level
is an array of objects, each element has its format's required fields with usable types. A file that fails
is an `InputError` naming it and what is wrong.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import duckdb

from ..errors import InputError
from .formats import FORMATS, PRIVATE_FIELDS, HistoryFormat, format_by_keys
from .listens import BODY_TYPES
from .reader import ExportFile

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


def sql_quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


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


# Files parsed at once, one per DuckDB connection: one JSON array file is read by one thread, so two files in
# flight keep both cores of a small machine busy.
PARSE_THREADS = 2


def parse_files(con: duckdb.DuckDBPyConnection, files: list[ExportFile]) -> list[ParsedFile]:
    """Load and check every file into `export_plays(file_idx, i, j, body)`: `j` the element minus the private
    fields, `body` its typed fields (listens.BODY_TYPES). Raises InputError on the first bad file (in file
    order, whichever finished first)."""
    con.execute(f"CREATE OR REPLACE TABLE export_plays (file_idx INTEGER, i BIGINT, j JSON, body {_BODY_SQL_TYPE})")

    def load(idx: int, source: ExportFile) -> ParsedFile:
        cursor = con.cursor()  # the same in-memory database: its own connection, its own `file_rows_<idx>`
        try:
            return _load_fast(cursor, idx, source) or _load_checked(cursor, idx, source)
        finally:
            cursor.execute(f"DROP TABLE IF EXISTS file_rows_{idx}")
            cursor.close()

    with ThreadPoolExecutor(PARSE_THREADS) as pool:
        futures = [pool.submit(load, idx, source) for idx, source in enumerate(files)]
        return [f.result() for f in futures]


# One parse per element for the fast path: every field any format checks or the tables read, each as its own
# small JSON value (SQL NULL when missing or null), next to the element's keys and its text minus private fields.
_VALUE_FIELDS = sorted(set().union(*FIELD_KINDS.values()) | set(BODY_TYPES))
_VALUES = json.dumps(dict.fromkeys(_VALUE_FIELDS, "JSON"))
_BODY_SQL_TYPE = "STRUCT(" + ", ".join(f'"{f}" {t}' for f, t in BODY_TYPES.items()) + ")"


def _read_sql(source: ExportFile) -> str:
    return f"read_json_objects({sql_quote(str(source.path))}, format='array', maximum_object_size=16777216)"


def _load_fast(con: duckdb.DuckDBPyConnection, idx: int, source: ExportFile) -> ParsedFile | None:
    """Read, check and type one file with one parse per element (three JSON functions on the element text:
    the private fields dropped, its keys, its field values; the checks then run on the small values). None
    when anything is off (unreadable, not objects, unknown shape, a bad field): `_load_checked` then reads
    the file again to say exactly what, or takes it if the quick checks were only stricter than needed."""
    try:
        con.execute(
            f"""CREATE OR REPLACE TABLE file_rows_{idx} AS
            SELECT row_number() OVER () AS i, json_merge_patch(json, {sql_quote(_DROP_PRIVATE)}) AS j,
                   json_keys(json) AS k, json_transform(json, {sql_quote(_VALUES)}) AS v
            FROM {_read_sql(source)}"""
        )
    except duckdb.Error:
        return None
    rows = f"file_rows_{idx}"
    # Most elements of a file have the same keys: the distinct key lists are few, and say everything needed
    # about shape (no empty or non-object element, required keys in every element) and unknown fields.
    key_lists = [set(k) for (k,) in con.execute(f"SELECT DISTINCT k FROM {rows}").fetchall()]
    plays = con.execute(f"SELECT count(*) FROM {rows}").fetchall()[0][0]
    if any(not k for k in key_lists):
        return None
    fmt = source.fmt
    if fmt is None:
        first = con.execute(f"SELECT k FROM {rows} WHERE i = 1").fetchall()
        fmt = format_by_keys(set(first[0][0])) if first else None
        if fmt is None:
            return None
    if any(not fmt.required <= k for k in key_lists):
        return None
    kinds = FIELD_KINDS[fmt.name]
    bad = [_fast_bad(kind, f"v.{_ident(f)}::VARCHAR") for f, kind in kinds.items()]
    if con.execute(f"SELECT bool_or({' OR '.join(bad)}) FROM {rows}").fetchall()[0][0]:
        return None
    keys = set().union(*key_lists)
    con.execute(f"INSERT INTO export_plays SELECT {idx}, i, j, {_typed_body(kinds)} FROM {rows}")
    return ParsedFile(source, fmt, plays, sorted(keys - fmt.known))


def _fast_bad(kind: str, text: str) -> str:
    """SQL true where `text` (a field's JSON text as `json_transform` wrote it, compact; NULL when missing or
    null) may not look like `kind`: string tests on the small text, no JSON parse. At least as strict as
    `_bad` (a string with an escape in a time, or a count of 19 digits, is left to the checked reader)."""
    if kind == TEXT:
        return f"NOT ({text} IS NULL OR starts_with({text}, '\"'))"
    if kind == FLAG:
        return f"NOT ({text} IS NULL OR {text} IN ('true', 'false'))"
    if kind == COUNT:
        return f"({text} IS NULL OR NOT regexp_full_match({text}, '[0-9]{{1,18}}'))"
    fmt = TS_FORMAT if kind == INSTANT else MINUTE_FORMAT
    return f"({text} IS NULL OR try_strptime({text}, '\"{fmt}\"') IS NULL)"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _typed_body(kinds: dict[str, str]) -> str:
    """The typed body from the values: a field the format has checked is cast directly; any other (a field of
    another format, unexpected here) is typed by `json_transform`, as the transform's typed read would."""
    parts = []
    for f, sql_type in BODY_TYPES.items():
        value = f"v.{_ident(f)}"
        if kinds.get(f) in (TEXT, INSTANT, MINUTE):  # a JSON string or NULL: unquoted, unescaped if need be
            text = f"{value}::VARCHAR"
            parts.append(
                f"{sql_quote(f)}: CASE WHEN contains({text}, '\\') THEN json_extract_string({value}, '$') "
                f"ELSE substring({text}, 2, length({text}) - 2) END"
            )
        elif kinds.get(f) in (COUNT, FLAG):
            parts.append(f"{sql_quote(f)}: {value}::{sql_type}")
        else:
            parts.append(f"{sql_quote(f)}: json_transform({value}, {sql_quote(json.dumps(sql_type))})")
    return "{" + ", ".join(parts) + "}"


def _load_checked(con: duckdb.DuckDBPyConnection, idx: int, source: ExportFile) -> ParsedFile:
    """Read and check one file step by step, naming the first thing wrong (element number, field, what it
    should be) in an InputError; a file that passes is typed from its stored text."""
    rows = f"file_rows_{idx}"
    con.execute(f"CREATE OR REPLACE TABLE {rows} (i BIGINT, is_object BOOLEAN, j JSON)")
    try:
        con.execute(
            f"""INSERT INTO {rows}
            SELECT row_number() OVER (), json_type(json) = 'OBJECT', json_merge_patch(json, {sql_quote(_DROP_PRIVATE)})
            FROM {_read_sql(source)}"""
        )
    except duckdb.Error as exc:
        raise InputError(f"{source.name}: {_json_problem(str(exc), str(source.path))}", hint=_NOTHING) from None
    plays, not_object = con.execute(f"SELECT count(*), min(i) FILTER (WHERE NOT is_object) FROM {rows}").fetchall()[0]
    if not_object is not None:
        raise InputError(f"{source.name}: unknown JSON shape: element {not_object} is not an object", hint=_NOTHING)
    keys = {k for (k,) in con.execute(f"SELECT DISTINCT unnest(json_keys(j)) FROM {rows}").fetchall()}
    fmt = source.fmt
    if fmt is None:
        first = con.execute(f"SELECT json_keys(j) FROM {rows} WHERE i = 1").fetchall()
        fmt = format_by_keys(set(first[0][0]) if first else set())
        if fmt is None:
            raise InputError(
                f"{source.name}: unknown JSON shape: not a Spotify streaming history file"
                + (f" (first element has {', '.join(sorted(first[0][0])[:6])})" if first else " (empty)"),
                hint=_NOTHING,
            )
    _check_fields(con, rows, source, fmt)
    con.execute(
        f"""INSERT INTO export_plays SELECT {idx}, i, j, {_typed_body(FIELD_KINDS[fmt.name])}
            FROM (SELECT i, j, json_transform(j, {sql_quote(_VALUES)}) AS v FROM {rows})"""
    )
    return ParsedFile(source, fmt, plays, sorted(keys - fmt.known))


_NOTHING = "nothing was imported"


def _json_problem(message: str, path: str) -> str:
    first = message.splitlines()[0].replace("Invalid Input Error: ", "").replace(f' in file "{path}"', "")
    if "Expected top-level JSON array" in first:
        return "unknown JSON shape: not a JSON array of plays"
    return f"truncated or malformed JSON ({first.rstrip('. ')})"


def _check_fields(con: duckdb.DuckDBPyConnection, rows: str, source: ExportFile, fmt: HistoryFormat) -> None:
    kinds = FIELD_KINDS[fmt.name]
    checks = list(kinds.items())
    required = sorted(fmt.required)
    paths = sorted(set(kinds) | set(required))
    slot = {f: n + 1 for n, f in enumerate(paths)}  # DuckDB lists are 1-based
    path_list = "[" + ", ".join(sql_quote(f"$.{f}") for f in paths) + "]"
    missing = ", ".join(f"min(i) FILTER (WHERE v[{slot[f]}] IS NULL)" for f in required)
    columns = ", ".join(f"min(i) FILTER (WHERE {_bad(kind, f'v[{slot[f]}]')})" for f, kind in checks)
    row = con.execute(
        f"SELECT {missing}, {columns} FROM (SELECT i, json_extract(j, {path_list}) AS v FROM {rows})"
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
    left to `parse_files`, which names what is wrong with it."""
    names: set[str] = set()
    for source in files:
        if source.fmt is not None and source.fmt.name != "legacy":
            continue
        try:
            rows = con.execute(
                f"SELECT DISTINCT username FROM read_json({sql_quote(str(source.path))}, format='array', "
                "columns={'username': 'VARCHAR'}, auto_detect=false, maximum_object_size=16777216) "
                "WHERE username <> ''"
            ).fetchall()
        except duckdb.Error:
            continue
        names.update(r[0] for r in rows if r[0])
    return sorted(names)


__all__ = ["FORMATS", "ParsedFile", "parse_files", "usernames"]
