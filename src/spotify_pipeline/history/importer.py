"""`import-history`: a Spotify data download -> raw run (`history_export`) -> transform -> `listens`.

All or nothing: every file is read, checked and made into its raw part (Parquet, typed, private fields
already gone: raw_parts.py) in a scratch folder before anything is written; then, under the lake's lock,
the parts are written to the raw zone and the manifest last, and the normal transform builds the tables
from those same parts (so `transform --rebuild` reads exactly what the import's own transform read).
A history file whose sha256 some earlier import of the same user already holds is skipped: re-importing
a download writes no raw run, and the tables get no new snapshot, unless an earlier import (or run) died
while publishing, or an import before its publish began: then its publish is finished, as the next run would.

The import publishes as a run does (transform/runner.py), under the publish journal: a reader never sees
half of it, and one killed between two table commits is redone from the journal by whatever comes next.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import secrets
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from ..config import Settings
from ..errors import InputError
from ..lake.layout import IMPORT_PENDING_KEY, manifest_key, new_run_id, raw_part_key
from ..lake.raw import RawZoneReader
from ..lake.storage import Storage
from ..reliability.crashpoints import crash_point
from ..tables.catalog import preload_library
from ..transform import TransformResult, transform
from ..transform.connection import connect, spill_parent
from ..transform.journal import read_journal
from . import workers
from .arrow_part import write_arrow_part
from .formats import HistoryFormat
from .parse import ParsedFile, begin, check_file, usernames
from .raw_parts import PART_SUFFIX, earliest_play, typed_part, write_checked_part
from .reader import ExportFile, open_export, remove_workdir, with_hashes
from .strict import strict_plays

log = logging.getLogger(__name__)
ENTITY = "history_export"
# DuckDB's memory for an import and its transform unless SPOTIFY_PIPELINE_MEMORY_LIMIT says otherwise: it
# spills past this. 1M plays: peak RSS 952 MiB with 400MB, 1,007-1,100 MiB with 500MB, about 2 GiB without
# (docs/BENCHMARKS.md); the time did not suffer.
IMPORT_MEMORY_LIMIT = "400MB"
# Files checked and written at once: one per core (the machine this was measured on has two).
PARSE_THREADS = 2


@dataclass(frozen=True)
class PhaseTime:
    wall_s: float
    cpu_s: float  # of the whole process, every thread (DuckDB's, the checks')


class _Clock:
    """Laps of wall and process CPU time, so a slow import says which phase was slow."""

    def __init__(self, phases: dict[str, PhaseTime]) -> None:
        self.phases = phases
        self.mark = (time.perf_counter(), time.process_time())

    def lap(self, name: str, worker_cpu_s: float = 0.0) -> None:
        """End the phase `name`; `worker_cpu_s`: CPU its worker processes used besides (workers.py)."""
        now = (time.perf_counter(), time.process_time())
        self.phases[name] = PhaseTime(now[0] - self.mark[0], now[1] - self.mark[1] + worker_cpu_s)
        self.mark = now


@dataclass
class ImportResult:
    user_id: str
    run_id: str | None = None  # None: nothing new, no raw run written
    files: list[dict[str, Any]] = field(default_factory=list)  # imported now: name, format, plays, sha256
    already_imported: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # not history files
    unknown_fields: dict[str, int] = field(default_factory=dict)  # field kept but not read -> files with it
    transform: TransformResult | None = None
    phases: dict[str, PhaseTime] = field(default_factory=dict)  # where the time went, in order (bench/history.py)
    worker_usage: workers.Usage | None = None  # what the check's worker processes cost, when it had some

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
    con.execute("SET preserve_insertion_order = true")  # raw parts in element order, elements numbered in it
    phases: dict[str, PhaseTime] = {}
    clock = _Clock(phases)
    pool: ProcessPoolExecutor | None = None
    try:
        contents = open_export(path, workdir, hash_folder=False)  # hashed below: first, or while checking
        # Whose history: --user, else the usernames of the legacy files (one typed column, read cheaply),
        # else the saved login. Known before any file is parsed, so files already imported are never parsed.
        user_id = resolve_user(user, usernames(con, contents.files) if not user else [], settings)
        result = ImportResult(user_id, skipped=contents.skipped, phases=phases)
        with lake_lock(storage, catalog, "import-history"):
            done = imported_hashes(storage, user_id)
            now = dt.datetime.now(dt.UTC)
            run_id = new_run_id(now, secrets.token_hex(3))
            meta = {"run_id": run_id, "fetched_at": now.isoformat(), "user_id": user_id}
            # All or nothing: every new file is read, checked and made into its raw part (in the scratch
            # folder) before anything is written to the lake.
            # The check's processes (workers.py) are started as soon as the files to check are known, their
            # forkserver first (its imports run while the rest starts); None: threads (a small download, or
            # processes cannot start here). Not for a re-import with nothing new: no process is started.
            if done:  # files already imported are found by their sha256 first, and never parsed
                files = with_hashes(contents.files)
                clock.lap("read_and_hash")
                new = _new_files(files, done, result)
                pool = workers.start(sum(f.size for f in new), len(new))
                fast = _in_processes(con, new, meta, workdir, result, pool, None)
                parsed = _parse_to_parts(con, new, meta, workdir, result, fast)
            else:  # none can have been imported: hashed on a thread while the files are checked
                pool = workers.start(sum(f.size for f in contents.files), len(contents.files))
                clock.lap("read_and_hash")  # read only: the hashing is in the next phase
                parsed = _parse_while_hashing(con, contents.files, meta, workdir, result, pool)
            for p in parsed:  # reported once: by the import that writes them
                for name in p.unknown_fields:
                    result.unknown_fields[name] = result.unknown_fields.get(name, 0) + 1
            con.close()  # DuckDB's memory is freed before the transform needs its own
            clock.lap("check_and_write_parts", result.worker_usage.cpu_s if result.worker_usage else 0.0)
            if parsed and run_transform:
                preload_library()  # imported while the raw run is written and the transform's DuckDB steps run
            if parsed:
                if run_transform:  # until its publish ends: an import killed before it has no journal to say so
                    storage.write_atomic(IMPORT_PENDING_KEY, json.dumps({"run_id": run_id}).encode(), overwrite=True)
                _write_raw_run(storage, run_id, now, user_id, parsed, contents.skipped)
                crash_point("history.raw_run_written")
                result.run_id = run_id
                result.files = [_file_entry(p) for p in parsed]
            clock.lap("raw_run")
            # The transform reads the parts just written: the same files `transform --rebuild` reads. With
            # nothing new it still runs if a publish did not finish (its journal is there) or never began (the
            # note is: no table read, which would load pyiceberg, docs/BENCHMARKS.md), so that importing the
            # same download again finishes it (transform/journal.py).
            unfinished = storage.exists(IMPORT_PENDING_KEY) or read_journal(storage) is not None
            if run_transform and (result.run_id or unfinished):
                result.transform = transform(
                    storage,
                    catalog,
                    by_run_id=result.run_id or "",
                    memory_limit=IMPORT_MEMORY_LIMIT,
                    on_publish=lambda: clock.lap("stage"),  # staged and checked: the commits begin
                )
                storage.delete(IMPORT_PENDING_KEY)
                _expire_history(catalog, settings.table_history_days)
                clock.lap("publish")
        return result
    finally:
        if pool is not None:  # already, unless the check did not use it
            pool.shutdown(cancel_futures=True)
        con.close()
        remove_workdir(workdir)


def _new_files(files: list[ExportFile], done: set[str], result: ImportResult) -> list[ExportFile]:
    """The files whose sha256 neither an earlier import (`done`) nor an earlier file of this download has;
    the others are listed in `result.already_imported`."""
    new: list[ExportFile] = []
    seen = set(done)
    for source in files:
        if source.sha256 in seen:
            result.already_imported.append(source.name)
        else:
            new.append(source)
            seen.add(source.sha256)
    return new


def _parse_while_hashing(
    con: duckdb.DuckDBPyConnection,
    files: list[ExportFile],
    meta: dict[str, str],
    workdir: Path,
    result: ImportResult,
    pool: ProcessPoolExecutor | None,
) -> list[ParsedFile]:
    """`_parse_to_parts` of every file while they are hashed, for a user with nothing imported yet: by the
    worker processes that read each file anyway (workers.py), else on a thread of its own (hashlib releases
    the GIL and the checks mostly hold it: 0.6 CPU s at 1M plays, ~0.3 s of wall when done first). A file
    repeating an earlier file of the download (the same sha256) is then dropped, its part deleted, as if
    never parsed."""
    hashes: dict[Path, tuple[str, int]] = {}
    fast = _in_processes(con, files, meta, workdir, result, pool, hashes)
    if fast is not None:
        parsed = _parse_to_parts(con, files, meta, workdir, result, fast)
        hashed = {f.path: dataclasses.replace(f, sha256=hashes[f.path][0], size=hashes[f.path][1]) for f in files}
    else:
        with ThreadPoolExecutor(1) as threads:
            hashing = threads.submit(with_hashes, files, 1)
            parsed = _parse_to_parts(con, files, meta, workdir, result)
            hashed = {f.path: f for f in hashing.result()}
    kept = {f.path for f in _new_files([hashed[f.path] for f in files], set(), result)}
    for p in parsed:
        p.source = hashed[p.source.path]
        if p.source.path not in kept and p.part is not None:
            p.part.unlink(missing_ok=True)
    return [p for p in parsed if p.source.path in kept]


def _in_processes(
    con: duckdb.DuckDBPyConnection,
    files: list[ExportFile],
    meta: dict[str, str],
    workdir: Path,
    result: ImportResult,
    pool: ProcessPoolExecutor | None,
    hashes: dict[Path, tuple[str, int]] | None,
) -> list[ParsedFile | None] | None:
    """The strict check and part of every file in `pool`'s worker processes (workers.py; `hashes`, when
    given, gets each file's sha256 and size from them); None, for the threads to do it, when there is no
    pool, when these files are too few to be worth it, or when its processes could not start."""
    if pool is None or not workers.worth_it(sum(f.size for f in files)):
        return None
    # pyiceberg (~0.6 CPU s of imports, holding the GIL) is imported while the workers run, not after
    metas = [_meta(meta, f.name, f.fmt) if f.fmt is not None else {} for f in files]
    parts = [_part_path(workdir, idx) for idx in range(len(files))]
    try:
        fast, result.worker_usage = workers.parts_in_processes(con, files, metas, parts, hashes, preload_library, pool)
    except workers.CannotStart:
        return None
    return fast


def _parse_to_parts(
    con: duckdb.DuckDBPyConnection,
    files: list[ExportFile],
    meta: dict[str, str],
    workdir: Path,
    result: ImportResult,
    fast: list[ParsedFile | None] | None = None,
) -> list[ParsedFile]:
    """Check every file and write its raw part into `workdir`; raise InputError on the first bad file.

    First each file the strict check accepts (strict.py) gets its part from that decode (arrow_part.py), or
    from DuckDB's typed reader where Arrow declines a value: done already in worker processes for a large
    download (`fast`, from `_in_processes`), else here on threads. Then, in file order, every other file goes
    through the checked parse (parse.py), which names the first problem or accepts it (unknown fields), and
    its part is written from that parse."""
    if fast is None:
        fast = _fast_on_threads(con, files, meta, workdir)
    begin(con)
    parsed: list[ParsedFile] = []
    for idx, (source, done) in enumerate(zip(files, fast, strict=True)):
        if done is None:
            done = check_file(con, idx, source)
            done.part = _part_path(workdir, idx)
            write_checked_part(con, idx, done.fmt, _meta(meta, source.name, done.fmt), done.part)
            con.execute("DELETE FROM export_plays WHERE file_idx = ?", [idx])
        parsed.append(done)
    return parsed


def _part_path(workdir: Path, idx: int) -> Path:
    return workdir / f"part-{idx:05d}{PART_SUFFIX}"


def _fast_on_threads(
    con: duckdb.DuckDBPyConnection, files: list[ExportFile], meta: dict[str, str], workdir: Path
) -> list[ParsedFile | None]:
    """The strict check and part of every file on `PARSE_THREADS` threads: msgspec and the Arrow columns
    hold the GIL, DuckDB (where Arrow declines) releases it, on a cursor of the thread's own."""
    local = threading.local()
    cursors: list[duckdb.DuckDBPyConnection] = []
    lock = threading.Lock()

    def typed(idx: int, source: ExportFile) -> ParsedFile | None:
        if source.fmt is None or (plays := strict_plays(source.path, source.fmt)) is None:
            return None
        part = _part_path(workdir, idx)
        file_meta = _meta(meta, source.name, source.fmt)
        if write_arrow_part(plays, source.fmt, file_meta, part):  # from the strict decode: parsed once
            return ParsedFile(source, source.fmt, len(plays), [], part)
        count = len(plays)
        del plays  # a value Arrow declined (arrow_part.py): DuckDB's typed reader reads the file
        if not hasattr(local, "cursor"):
            with lock:
                local.cursor = con.cursor()
                cursors.append(local.cursor)
        return typed_part(local.cursor, source, count, file_meta, part)

    try:
        with ThreadPoolExecutor(PARSE_THREADS) as pool:
            return list(pool.map(typed, range(len(files)), files))
    finally:
        for cursor in cursors:
            cursor.close()


def _meta(meta: dict[str, str], file: str, fmt: HistoryFormat) -> dict[str, str]:
    return meta | {"file": file, "format": fmt.name}


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
    storage: Storage, run_id: str, now: dt.datetime, user_id: str, parsed: list[ParsedFile], skipped: list[str]
) -> None:
    """The run's parts (one per history file with plays, each through the storage's atomic write), then its
    manifest, last: a run without one was never complete and is never read."""
    entries = []
    written = [(p, p.part) for p in parsed if p.plays and p.part is not None]
    # Earliest plays first: a download's files by time, so that its events, read in part order, usually
    # are in the tables' order already and need no sort to be published (transform/publish.py `_in_order`).
    written.sort(key=lambda pair: earliest_play(pair[1]))
    for number, (p, part) in enumerate(written, start=1):
        key = raw_part_key(ENTITY, now.date(), run_id, number, suffix=PART_SUFFIX)
        data = part.read_bytes()
        storage.write_atomic(key, data)
        entries.append(
            {
                "key": key,
                "entity": ENTITY,
                "records": p.plays,
                "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        )
    manifest = {
        "run_id": run_id,
        "extracted_date": now.date().isoformat(),
        "files": entries,
        "kind": "history_import",
        "status": "complete",
        "user_id": user_id,
        "history_files": [_file_entry(p) for p in parsed],
        "skipped_files": skipped,
    }
    storage.write_atomic(manifest_key(now.date(), run_id), json.dumps(manifest, indent=2, ensure_ascii=False).encode())


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
        if result.transform is not None and result.transform.raw_runs:
            runs = ", ".join(result.transform.raw_runs)
            lines.append(f"published raw runs an earlier command left unpublished: {runs}")
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
