"""`import-history`: a Spotify data download -> raw run (`history_export`) -> transform -> `listens`.

All or nothing: every file is read and checked before anything is written; then, under the lake's lock,
the raw part files are written (one per history file, private fields already gone) and the manifest last,
and the normal transform builds the tables from the raw zone (so `transform --rebuild` recreates them).
A history file whose sha256 some earlier import of the same user already holds is skipped: re-importing
a download writes no raw run, and the tables get no new snapshot.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import secrets
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Settings
from ..errors import InputError
from ..lake.layout import manifest_key, new_run_id, raw_part_key
from ..lake.raw import RawZoneReader
from ..lake.storage import Storage
from ..transform import TransformResult, transform
from ..transform.connection import connect, spill_parent
from .listens import BODY_STRUCTURE
from .parse import ParsedFile, parse_files, sql_quote, usernames
from .raw_parts import COMPRESS_THREADS, PartBytes, gzip_part, line_prefix, part_lines
from .reader import ExportFile, open_export, remove_workdir

log = logging.getLogger(__name__)
ENTITY = "history_export"
# DuckDB's memory for an import and its transform unless SPOTIFY_PIPELINE_MEMORY_LIMIT says otherwise: it
# spills past this. 1M plays: peak RSS 952 MiB with 400MB, 1,007-1,100 MiB with 500MB, about 2 GiB without
# (docs/BENCHMARKS.md); the time did not suffer.
IMPORT_MEMORY_LIMIT = "400MB"


@dataclass
class ImportResult:
    user_id: str
    run_id: str | None = None  # None: nothing new, no raw run written
    files: list[dict[str, Any]] = field(default_factory=list)  # imported now: name, format, plays, sha256
    already_imported: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # not history files
    unknown_fields: dict[str, int] = field(default_factory=dict)  # field kept but not read -> files with it
    transform: TransformResult | None = None

    @property
    def plays(self) -> int:
        return sum(int(f["plays"]) for f in self.files)


def imported_hashes(storage: Storage, user_id: str) -> set[str]:
    """sha256 of every history file already in the raw zone for this user."""
    return {
        f["sha256"]
        for m in RawZoneReader(storage).manifests()
        if m.get("kind") == "history_import" and m.get("user_id") == user_id
        for f in m.get("history_files", [])
    }


def resolve_user(user: str | None, usernames: list[str], settings: Settings | None) -> str:
    """--user, else the legacy files' username, else the logged-in user; else a one-line error."""
    if user:
        return user
    if len(usernames) == 1:
        return usernames[0]
    if len(usernames) > 1:
        raise InputError(f"the export names several users ({', '.join(usernames)})", hint="pass --user ID")
    logged_in = _logged_in_user(settings) if settings is not None else None
    if logged_in:
        return logged_in
    raise InputError("cannot tell whose listening history this is", hint="pass --user ID (your Spotify username)")


def _logged_in_user(settings: Settings) -> str | None:
    """The saved login's user (one GET /me), or None when there is no saved login."""
    from ..extract.user_auth import SecretsManagerTokenStore, TokenStore
    from ..pipeline import make_client

    store = SecretsManagerTokenStore(settings.login_secret) if settings.login_secret else TokenStore()
    if store.load() is None:
        return None
    with make_client(settings) as client:
        user = client.get("/me").data.get("id")
    return str(user) if user else None


def import_history(
    settings: Settings, path: Path, *, user: str | None = None, run_transform: bool = True
) -> ImportResult:
    """Import one download (zip, folder or JSON file) for `user`; see the module docstring."""
    from ..pipeline import _expire_history, lake_lock, lake_parts

    storage, catalog = lake_parts(settings)
    workdir = Path(tempfile.mkdtemp(prefix="spotify-history-"))
    # spills to disk (under the lake's _state/) rather than grow past the limit
    con = connect(memory_limit=IMPORT_MEMORY_LIMIT, spill_under=spill_parent(catalog))
    try:
        contents = open_export(path, workdir)
        # Whose history: --user, else the usernames of the legacy files (one typed column, read cheaply),
        # else the saved login. Known before any file is parsed, so files already imported are never parsed.
        user_id = resolve_user(user, usernames(con, contents.files) if not user else [], settings)
        result = ImportResult(user_id, skipped=contents.skipped)
        with lake_lock(storage, catalog, "import-history"):
            done = imported_hashes(storage, user_id)
            new_files: list[ExportFile] = []
            seen: set[str] = set()
            for source in contents.files:
                if source.sha256 in done or source.sha256 in seen:
                    result.already_imported.append(source.name)
                else:
                    new_files.append(source)
                    seen.add(source.sha256)
            # All or nothing: every new file is read and checked before anything is written.
            todo = list(enumerate(parse_files(con, new_files)))
            for _, p in todo:  # reported once: by the import that writes them
                for name in p.unknown_fields:
                    result.unknown_fields[name] = result.unknown_fields.get(name, 0) + 1
            parsed = workdir / "parsed.parquet"
            if todo:
                result.run_id, fetched_at = _write_raw_run(con, storage, user_id, todo, contents.skipped)
                result.files = [_file_entry(p) for _, p in todo]
                if run_transform:
                    _write_parsed(
                        con, todo, {"run_id": result.run_id, "fetched_at": fetched_at, "user_id": user_id}, parsed
                    )
            con.close()  # the parsed plays (about 600 MB per 1M) are freed before the transform needs memory
            if run_transform and result.run_id:
                result.transform = transform(
                    storage,
                    catalog,
                    by_run_id=result.run_id,
                    memory_limit=IMPORT_MEMORY_LIMIT,
                    parsed_history=(result.run_id, parsed),
                )
                _expire_history(catalog, settings.table_history_days)
        return result
    finally:
        con.close()
        remove_workdir(workdir)


def _file_entry(p: ParsedFile) -> dict[str, Any]:
    return {
        "name": p.source.name,
        "format": p.fmt.name,
        "plays": p.plays,
        "sha256": p.source.sha256,
        "bytes": p.source.size,
        "unknown_fields": p.unknown_fields,
    }


def _write_raw_run(
    con: Any, storage: Storage, user_id: str, todo: list[tuple[int, ParsedFile]], skipped: list[str]
) -> tuple[str, str]:
    """One part file per history file (one element per line: `{"meta": {...}, "body": <element>}`), then the
    manifest. DuckDB builds each part's lines while the previous parts are compressed and written on other
    threads (raw_parts.py); every part goes through the storage's atomic write, the manifest last."""
    now = dt.datetime.now(dt.UTC)
    run_id = new_run_id(now, secrets.token_hex(3))

    def write(key: str, lines: Any) -> PartBytes:
        part = gzip_part(lines)
        storage.write_atomic(key, part.data)
        return part

    pending = []
    with ThreadPoolExecutor(COMPRESS_THREADS) as pool:
        for part, (idx, p) in enumerate((t for t in todo if t[1].plays), start=1):
            key = raw_part_key(ENTITY, now.date(), run_id, part)
            meta = {
                "run_id": run_id,
                "entity": ENTITY,
                "fetched_at": now.isoformat(),
                "user_id": user_id,
                "file": p.source.name,
                "format": p.fmt.name,
            }
            lines = part_lines(con, line_prefix(meta), f"file_idx = {int(idx)}")
            pending.append((key, p.plays, pool.submit(write, key, lines)))
            if len(pending) > COMPRESS_THREADS:  # bounded: at most a few parts' lines in memory at once
                pending[-COMPRESS_THREADS - 1][2].result()
        entries = [
            {
                "key": key,
                "entity": ENTITY,
                "records": plays,
                "bytes": len(done.data),
                "raw_bytes": done.raw_bytes,
                "sha256": done.sha256,
            }
            for key, plays, future in pending
            for done in [future.result()]
        ]
    manifest = {
        "run_id": run_id,
        "extracted_date": now.date().isoformat(),
        "files": entries,
        "kind": "history_import",
        "status": "complete",
        "user_id": user_id,
        "history_files": [_file_entry(p) for _, p in todo],
        "skipped_files": skipped,
    }
    storage.write_atomic(manifest_key(now.date(), run_id), json.dumps(manifest, indent=2, ensure_ascii=False).encode())
    return run_id, now.isoformat()


def _write_parsed(con: Any, todo: list[tuple[int, ParsedFile]], meta: dict[str, str], path: Path) -> None:
    """The run's records as `(meta, body)` rows with the body typed as the transform types a raw part's
    (`BODY_STRUCTURE`), in a Parquet file the transform reads instead of parsing the raw parts again."""
    files = " UNION ALL ".join(
        f"SELECT {int(idx)} AS file_idx, {sql_quote(p.source.name)} AS file, {sql_quote(p.fmt.name)} AS format"
        for idx, p in todo
    )
    fixed = ", ".join(f"'{k}': {sql_quote(v)}" for k, v in meta.items())
    con.execute(
        f"""COPY (SELECT {{{fixed}, 'file': f.file, 'format': f.format}} AS meta,
                        json_transform(e.j, {sql_quote(BODY_STRUCTURE)}) AS body
                 FROM export_plays e JOIN ({files}) f USING (file_idx))
            TO {sql_quote(str(path))} (FORMAT parquet, COMPRESSION uncompressed)"""
    )


def import_lines(result: ImportResult) -> list[str]:
    """What an import did, for people: one line per fact."""
    lines = []
    if result.run_id:
        formats = sorted({f["format"] for f in result.files})
        lines.append(
            f"imported {result.plays:,} plays from {len(result.files)} files ({', '.join(formats)}) "
            f"for user {result.user_id} as raw run {result.run_id}"
        )
    else:
        lines.append(f"nothing new to import for user {result.user_id}")
    if result.already_imported:
        lines.append(f"already imported, skipped: {len(result.already_imported)} files")
    if result.skipped:
        lines.append(f"not listening history, skipped: {', '.join(result.skipped)}")
    if result.unknown_fields:
        fields = ", ".join(f"{name} ({n} files)" for name, n in sorted(result.unknown_fields.items()))
        lines.append(f"unknown fields kept in the raw zone, not read: {fields}")
    if result.transform is not None and "listens" in result.transform.rows:
        lines.append(
            f"listens: {result.transform.rows['listens']:,} rows "
            f"(listen_events: {result.transform.rows['listen_events']:,})"
        )
    return lines
