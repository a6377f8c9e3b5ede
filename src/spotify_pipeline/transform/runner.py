"""Run the transform: pick raw runs not yet processed, normalize them, merge, commit table by table.

The DuckDB temp relations the steps pass to each other (`complete`, `b_*`, `old_*`, `staged_*`, ...) and the
order that builds them are declared in transform/relations.py, which checks them as the steps run.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import logging
import os
import secrets
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from ..config import DEFAULT_TRANSFORM_BATCH_BYTES, parse_batch_bytes, parse_memory_limit
from ..errors import LakeError, QualityError
from ..history.listens import add_listened_songs, build_listen_events
from ..lake.layout import manifest_key
from ..lake.raw import RawZoneReader
from ..lake.storage import Storage
from ..quality.checks import CheckResult, failed_errors, results_rows, run_checks
from ..reliability.crashpoints import crash_point
from ..tables.catalog import CLUSTER_BY, MAX_REPLACED_KEYS, Catalog
from ..tables.contract import DATA_TABLES, TABLES
from .batch import build_batch
from .changes import build_changes
from .journal import PublishJournal, clear_journal, read_journal, write_journal
from .merge import MERGES, Derived, ReplaceChildren, merge_sql
from .quarantine import Quarantine, Rejected
from .raw import RawFile
from .relations import checked_step
from .user_tables import build_user_tables

log = logging.getLogger(__name__)


@dataclass
class TransformResult:
    raw_runs: list[str] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)  # rows per table after the merge
    batch_rows: dict[str, int] = field(default_factory=dict)  # rows per table in this batch
    item_types: dict[str, int] = field(default_factory=dict)  # playlist positions by kind, this batch
    rebuilt: bool = False
    rejected: int = 0  # raw records set aside in rejected_records by this transform

    def as_dict(self) -> dict[str, Any]:
        return {
            "raw_runs": self.raw_runs,
            "rows": self.rows,
            "batch_rows": self.batch_rows,
            "item_types": self.item_types,
            "rebuilt": self.rebuilt,
            "rejected": self.rejected,
        }


def duckdb_size(value: str, name: str) -> str:
    """A DuckDB memory size such as `1500MB` or `2GiB`, normalized; anything else is a ConfigError naming
    `name`. One definition, in config.py, so settings refuse exactly what DuckDB would be refused."""
    return parse_memory_limit(value, name)


def spill_parent(catalog: Catalog) -> Path | None:
    """Where DuckDB may spill for this lake: its own `_state/` when local (same disk, same owner, nothing in
    the working directory); None (the system's temp folder) for an S3 lake."""
    return None if catalog.remote else Path(catalog.root) / "_state"


def connect(remote: bool = False, memory_limit: str = "", spill_under: Path | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection in UTC; with `remote`, able to read s3:// paths through an fsspec filesystem.
    DuckDB's memory is capped by SPOTIFY_PIPELINE_MEMORY_LIMIT, else by `memory_limit` when given.
    It spills into a folder of its own under `spill_under` (default: the system's temp folder; never the
    working directory, DuckDB's default), which DuckDB creates on the first spill and deletes on close."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    # Row order is never relied on, which lets DuckDB use less memory. A memory limit is opt-in (DuckDB's
    # default is 80% of RAM); with the raw zone read in batches, a 1M-item rebuild completes under 1.5 GB.
    if os.environ.get("SPOTIFY_PIPELINE_MEMORY_LIMIT"):
        limit = duckdb_size(os.environ["SPOTIFY_PIPELINE_MEMORY_LIMIT"], "SPOTIFY_PIPELINE_MEMORY_LIMIT")
        con.execute(f"SET memory_limit = '{limit}'")  # validated: digits and a unit, nothing to escape
    elif memory_limit:
        con.execute(f"SET memory_limit = '{duckdb_size(memory_limit, 'memory_limit')}'")
    con.execute("SET preserve_insertion_order = false")
    # Temp tables live for one transform: compressing them (DuckDB's default for bulk appends) cost a
    # third of a 1M-item rebuild for nothing (profiled; docs/BENCHMARKS.md).
    con.execute("SET force_compression = 'uncompressed'")
    # Nor is there anything to checkpoint: the database lives in memory for one transform, but DuckDB
    # still ran an automatic checkpoint every 16 MB of appends, 10% of a 1M-item rebuild (profiled).
    con.execute("SET checkpoint_threshold = '1TB'")
    con.execute("SET enable_progress_bar = false")  # our own console reports progress
    parent = Path(spill_under) if spill_under is not None else Path(tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    spill = parent / f"duckdb-spill-{os.getpid()}-{secrets.token_hex(4)}"
    con.execute(f"SET temp_directory = '{str(spill).replace(chr(39), chr(39) * 2)}'")
    if remote:
        from ..lake.s3 import s3_filesystem

        con.register_filesystem(s3_filesystem())
    return con


# Raw JSON parsed per batch. Every batch costs a fixed amount (materialising its positions, one partial row per
# song, album and artist it saw), so larger batches are faster and, up to about 1 GiB, use less memory too:
# a 1M-item rebuild took 26.4 s / 2,702 MiB peak with 256 MiB batches, 22.2 s / 2,269 MiB with 1 GiB, 22.2 s /
# 2,055 MiB with 2 GiB (docs/BENCHMARKS.md).
DEFAULT_BATCH_BYTES = DEFAULT_TRANSFORM_BATCH_BYTES
# Rows per slice written to a table (one Parquet file each). In a 10M-item rebuild with DuckDB capped at 1 GB,
# publishing 500k-row slices of `songs` (Arrow slice, its cast, the Parquet writer) set the peak RSS: +475 MiB;
# 200k-row slices: +178 MiB (docs/BENCHMARKS.md). Smaller files also make a run that changes a few keys
# rewrite less: it rewrites every file holding one of them (catalog.py `CLUSTER_BY`).
PUBLISH_ROWS = 50_000


def _batch_bytes() -> int:
    return parse_batch_bytes(os.environ.get("SPOTIFY_PIPELINE_TRANSFORM_BATCH_BYTES", ""))  # checked as settings are


def register_table(
    con: duckdb.DuckDBPyConnection, catalog: Catalog, name: str, view: str, snapshot_id: int | None = None
) -> None:
    """Expose a table's current snapshot (or `snapshot_id`) to DuckDB as `view` (Parquet files read in
    place); a table that does not exist yet, or has no rows, is an empty view with the contract's columns."""
    files = catalog.data_files(name, snapshot_id) if name in catalog.table_names() else []
    if files:
        file_list = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
        con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM read_parquet({file_list})")
        return
    schema = TABLES[name].schema if name in TABLES else catalog.table(name).schema().as_arrow()
    _register_empty(con, view, schema)


def _register_empty(con: duckdb.DuckDBPyConnection, view: str, schema: pa.Schema) -> None:
    con.register(f"_{view}_empty", schema.empty_table())
    con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM _{view}_empty")


def _register_base(con: duckdb.DuckDBPyConnection, catalog: Catalog, name: str, base: dict[str, int | None]) -> None:
    """`old_<name>`: the table as it stood when this transform (or the interrupted one it redoes) began."""
    with checked_step(con, f"register_{name}"):
        if base.get(name) is None:
            _register_empty(con, f"old_{name}", TABLES[name].schema)
        else:
            register_table(con, catalog, name, f"old_{name}", base[name])


def transform(
    storage: Storage,
    catalog: Catalog,
    *,
    rebuild: bool = False,
    by_run_id: str = "",
    stage_hook: Callable[[duckdb.DuckDBPyConnection], None] | None = None,
    batch_bytes: int | None = None,
    memory_limit: str = "",
    on_publish: Callable[[], None] | None = None,
    parsed_history: tuple[str, Path] | None = None,
) -> TransformResult:
    """Bring every table up to date with the raw zone. `rebuild` recreates every table from raw alone.

    Write-audit-publish: every table's new rows are staged first, the quality checks run on the staged
    rows, and only if no error-severity check fails are the tables committed (one Iceberg commit each).
    A transform killed between two of those commits is redone by the next one from where the tables stood
    before it (transform/journal.py), so a crash while publishing never leaves the lake half-updated for good.
    `batch_bytes` (default: SPOTIFY_PIPELINE_TRANSFORM_BATCH_BYTES, else 1 GiB) is how much raw JSON is
    parsed at a time; it bounds the transform's memory, and `memory_limit` caps DuckDB's unless
    SPOTIFY_PIPELINE_MEMORY_LIMIT does. `stage_hook` lets tests tamper with the staged
    rows to prove the gate holds. `on_publish` is called when the checks have passed and the commits begin
    (the progress bar's `publish` phase). `parsed_history` is (run id, Parquet file) from `import-history`: the
    history records of that run as its import already parsed and typed them, read instead of its raw parts.
    """
    batch_bytes = batch_bytes or _batch_bytes()  # checked first: a bad setting fails even with no new data
    reader = RawZoneReader(storage)
    manifests = reader.manifests()
    journal = read_journal(storage)
    if journal is not None:
        log.warning(
            "a transform that started publishing at %s was interrupted; redoing it from where the tables stood",
            journal.started_at,
        )
        rebuild = rebuild or journal.rebuild
    result = TransformResult(rebuilt=rebuild)
    # Where each table stands before this transform: every merge reads these snapshots, not the current ones,
    # which differ only after an interrupted publish.
    base: dict[str, int | None] = {}
    if not rebuild:
        base = journal.snapshots if journal is not None else current_snapshots(catalog)
    previous_counts = table_row_counts(catalog, base)
    processed = _processed_runs(catalog, base.get("processed_raw_runs"))
    todo = [m for m in manifests if m["run_id"] not in processed]
    # A lake written before a derived table existed gets it on the next transform, even with no new data.
    derived_missing = bool(previous_counts) and any(
        isinstance(MERGES[n], Derived) and n not in previous_counts for n in DATA_TABLES
    )
    if not todo and not derived_missing:
        if journal is not None:
            clear_journal(storage)
        result.rows = table_row_counts(catalog)
        return result

    files: dict[str, list[RawFile]] = {}
    complete: list[dict[str, Any]] = []
    keys: dict[str, str] = {}  # raw file URI -> key, to name and re-read a file whose records are set aside
    for manifest in todo:
        for entry in manifest["files"]:
            _check_raw_size(storage, manifest["run_id"], entry)
            keys[storage.uri(entry["key"])] = entry["key"]
            files.setdefault(entry["entity"], []).append(
                RawFile(entry["entity"], storage.uri(entry["key"]), entry.get("raw_bytes", entry["bytes"]))
            )
        for playlist_id, outcome in (manifest.get("playlists") or {}).items():
            if outcome.get("status") == "complete":
                complete.append(
                    {
                        "run_id": manifest["run_id"],
                        "playlist_id": playlist_id,
                        "snapshot_id": outcome.get("snapshot_id"),
                        "items": outcome.get("items"),
                        "manifest": manifest_key(dt.date.fromisoformat(manifest["extracted_date"]), manifest["run_id"]),
                    }
                )

    con = connect(remote=catalog.remote, memory_limit=memory_limit, spill_under=spill_parent(catalog))
    quarantine = Quarantine(lambda uri: storage.read(keys[uri]), keys.__getitem__)
    try:
        con.register(
            "_complete",
            pa.Table.from_pylist(
                complete,
                schema=pa.schema(
                    [
                        ("run_id", pa.string()),
                        ("playlist_id", pa.string()),
                        ("snapshot_id", pa.string()),
                        ("items", pa.int64()),  # how many positions the extractor read (older manifests: None)
                        ("manifest", pa.string()),
                    ]
                ),
            ),
        )
        sources = [{"run_id": m["run_id"], "source": src} for m in todo for src in (m.get("sources") or {})]
        con.register(
            "_sources",
            pa.Table.from_pylist(sources, schema=pa.schema([("run_id", pa.string()), ("source", pa.string())])),
        )
        with checked_step(con, "load_runs"):
            con.execute("CREATE TEMP TABLE complete AS SELECT * FROM _complete")
            con.execute("CREATE TEMP TABLE complete_sources AS SELECT * FROM _sources")
        try:
            build_batch(con, files, batch_bytes, quarantine)
        except duckdb.Error as exc:
            raise _raw_zone_error(exc, storage, todo) from exc
        result.rejected = len(quarantine.rejected)
        for rejected in quarantine.rejected:
            log.warning(
                "set aside %s line %d (%s, playlist %s): %s at %s",
                rejected.raw_key,
                rejected.line_number,
                rejected.entity,
                rejected.playlist_id,
                rejected.error,
                rejected.field,
            )
        result.item_types = dict(con.execute("SELECT item_type, count(*) FROM b_playlist_songs GROUP BY 1").fetchall())
        # Write: stage every table's merged rows.
        _register_base(con, catalog, "playlist_songs", base)
        build_changes(con)
        build_user_tables(con)
        parsed_uris = {
            storage.uri(e["key"])
            for m in todo
            if parsed_history and m["run_id"] == parsed_history[0]
            for e in m["files"]
        }
        with checked_step(con, "build_listen_events"):
            build_listen_events(
                con,
                [f.uri for f in files.get("history_export", []) if f.uri not in parsed_uris],
                [str(parsed_history[1])] if parsed_history and parsed_uris else [],
            )
        _register_base(con, catalog, "songs", base)
        with checked_step(con, "add_listened_songs"):
            add_listened_songs(con)  # listened tracks become songs (album and artist filled in by `run` later)
        # A table whose merge cannot change it (no batch rows, or a derived table whose inputs are unchanged)
        # is staged as its current rows and not published again: a whole-table overwrite that changes nothing
        # is waste, and its snapshot stays the one the journal records.
        changed: dict[str, bool] = {}
        for name in DATA_TABLES:
            rule = MERGES[name]
            if isinstance(rule, Derived):
                changed[name] = rebuild or name not in base or any(changed.get(i, True) for i in rule.inputs)
            else:
                result.batch_rows[name] = con.execute(f"SELECT count(*) FROM b_{name}").fetchall()[0][0]
                emptied = rule.emptied if isinstance(rule, ReplaceChildren) else None
                emptied_rows = con.execute(f"SELECT count(*) FROM {emptied}").fetchall()[0][0] if emptied else 0
                changed[name] = rebuild or name not in base or result.batch_rows[name] + emptied_rows > 0
            if name != "playlist_songs" and not (changed[name] and isinstance(rule, Derived)):
                _register_base(con, catalog, name, base)
            with checked_step(con, f"stage_{name}"):
                if changed[name]:
                    con.execute(f"CREATE TEMP TABLE staged_{name} AS {merge_sql(name)}")
                else:
                    con.execute(f"CREATE TEMP VIEW staged_{name} AS SELECT * FROM old_{name}")
        if stage_hook is not None:
            stage_hook(con)
        # Audit: the checks run on the staged rows; an error keeps every table as it was.
        staged_rows = {
            name: con.execute(f"SELECT count(*) FROM staged_{name}").fetchall()[0][0] for name in DATA_TABLES
        }
        _ensure_space(catalog, staged_rows)
        now = dt.datetime.now(dt.UTC)
        result.checks = run_checks(con, {n: f"staged_{n}" for n in DATA_TABLES}, previous_counts)
        catalog.append(
            "quality_results",
            pa.Table.from_pylist(results_rows(result.checks, by_run_id, now), schema=TABLES["quality_results"].schema),
        )
        failures = failed_errors(result.checks)
        if failures:
            names = ", ".join(f"{r.check.name} ({r.failing_rows} rows)" for r in failures)
            raise QualityError(
                f"data-quality check failed: {names}; nothing was published",
                checks=[r.check.name for r in failures],
                hint="the previous tables stay current; see the quality_results table",
            )
        result.rows["rejected_records"] = _record_rejected(catalog, quarantine.rejected, todo, rebuild, by_run_id, now)
        # Publish: one commit per table, then the bookkeeping. (A rebuild overwrites too, so the tables'
        # earlier snapshots stay in their history, until retention.py expires them.) The journal, written
        # first, lets the next transform redo this one if it is killed before the last commit.
        if on_publish is not None:
            on_publish()
        write_journal(storage, PublishJournal(base, [m["run_id"] for m in todo], rebuild))
        for name in DATA_TABLES:
            result.rows[name] = staged_rows[name]
            if not changed[name]:
                continue
            if not _publish_changes(con, catalog, name, rebuild, base):
                # Streamed from DuckDB in slices, one file each, sorted so that each file holds a narrow range
                # of the table's cluster column: the published rows are never all in Python's memory at once.
                order = sort_order(name)
                ordered = con.sql(f"SELECT * FROM staged_{name}" + (f" ORDER BY {order}" if order else ""))
                catalog.overwrite(name, ordered.to_arrow_reader(PUBLISH_ROWS))
            crash_point("transform.table_committed")
        # An interrupted publish may have recorded some of these runs already: record each once.
        recorded = set() if rebuild else _processed_runs(catalog, catalog.snapshot_id("processed_raw_runs"))
        processed_rows = pa.Table.from_pylist(
            [
                {"raw_run_id": m["run_id"], "processed_at": now, "by_run_id": by_run_id}
                for m in todo
                if m["run_id"] not in recorded
            ],
            schema=TABLES["processed_raw_runs"].schema,
        )
        _record_gaps(catalog, todo, rebuild)
        if rebuild:
            catalog.overwrite("processed_raw_runs", processed_rows)
        else:
            catalog.append("processed_raw_runs", processed_rows)
        crash_point("transform.tables_committed")
        clear_journal(storage)
        crash_point("transform.published")
    finally:
        con.close()
        quarantine.close()
    result.raw_runs = [m["run_id"] for m in todo]
    return result


# Whether a table whose merge changed some keys is published by replacing only their rows (False: the
# layout before issue #20, every changed table overwritten whole; bench/steady_state.py --no-layout).
FILTERED_PUBLISH = True


def cluster_column(name: str) -> str:
    """The column a table is sorted by when written, and whose values name the rows a run replaces."""
    return CLUSTER_BY.get(name, TABLES[name].key[0])


def sort_order(name: str) -> str:
    """The cluster column, then the rest of the key: rows in key order compress 1-2% better (1M positions).
    (Empty: no order, as tables were written before issue #20.)"""
    column = cluster_column(name)
    return ", ".join([column, *(k for k in TABLES[name].key if k != column)]) if column in TABLES[name].key else column


def _changed_keys(name: str) -> str:
    """A query of the `cluster_column` values whose rows the merge may have changed; every other value's
    rows in `staged_<name>` are exactly those of `old_<name>`. A keyed merge changes only the keys its batch
    holds (and a playlist emptied upstream, `ReplaceChildren.emptied`); a derived table is compared whole."""
    rule, column = MERGES[name], cluster_column(name)
    if isinstance(rule, Derived):
        return (
            f"SELECT {column} FROM (SELECT * FROM staged_{name} EXCEPT SELECT * FROM old_{name}) UNION "
            f"SELECT {column} FROM (SELECT * FROM old_{name} EXCEPT SELECT * FROM staged_{name})"
        )
    emptied = rule.emptied if isinstance(rule, ReplaceChildren) else None
    return f"SELECT {column} FROM b_{name}" + (f" UNION SELECT {column} FROM {emptied}" if emptied else "")


def _literal(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dt.date):  # and datetimes: ISO-8601 with the offset, as pyiceberg parses them
        return value.isoformat()
    return str(value)


def _publish_changes(
    con: duckdb.DuckDBPyConnection, catalog: Catalog, name: str, rebuild: bool, base: dict[str, int | None]
) -> bool:
    """Publish only the rows of the keys this batch changed (`_changed_keys`): the merge takes every other
    key's rows unchanged from `old_<name>`, the base snapshot, so the table needs only those rows replaced -
    if it still is at the base snapshot. A transform redoing an interrupted publish that had already
    committed this table finds it past its base and overwrites it whole, as before (transform/journal.py).
    False, having written nothing: overwrite the whole table (a rebuild, a new table, too many keys)."""
    if not FILTERED_PUBLISH or rebuild or base.get(name) is None or catalog.snapshot_id(name) != base[name]:
        return False
    column = cluster_column(name)
    if isinstance(MERGES[name], Derived):  # compared with its rows as they stood
        _register_base(con, catalog, name, base)
    changed = _changed_keys(name)
    con.execute(f"CREATE OR REPLACE TEMP TABLE changed_{name} AS SELECT DISTINCT {column} FROM ({changed})")
    # As ISO text: pyiceberg converts a string literal to the column's type (dates, timestamps) when binding.
    keys = [_literal(k) for (k,) in con.execute(f"SELECT {column} FROM changed_{name}").fetchall()]
    if len(keys) > MAX_REPLACED_KEYS or None in keys:  # no IN filter matches NULL: the whole table, then
        return False
    changed_rows = f"SELECT * FROM staged_{name} WHERE {column} IN (SELECT {column} FROM changed_{name})"
    rows = con.sql(f"{changed_rows} ORDER BY {sort_order(name)}")
    catalog.replace_rows(name, column, keys, rows.to_arrow_reader(PUBLISH_ROWS))
    return True


def _check_raw_size(storage: Storage, run_id: str, entry: dict[str, Any]) -> None:
    """Refuse a raw file that is missing or whose size is not its manifest's (changed after it was written:
    a line deleted from a part would otherwise silently publish fewer rows). Metadata only; `check --raw`
    reads every file and compares records and checksums too."""
    size = storage.size(entry["key"])
    if size is None:
        raise LakeError(
            f"raw file {entry['key']} listed in run {run_id} is missing",
            hint="restore it; the raw zone is the source of every table",
        )
    if entry.get("bytes") is not None and size != entry["bytes"]:
        raise LakeError(
            f"corrupted raw file {storage.uri(entry['key'])} (run {run_id}): {size} bytes, its manifest says "
            f"{entry['bytes']}",
            hint="it changed after it was written: restore it from a backup (`check --raw` lists every such "
            "file); no table was changed",
        )


def _ensure_space(catalog: Catalog, staged_rows: dict[str, int]) -> None:
    """Refuse to start publishing when the staged rows clearly cannot fit (a full disk mid-publish would
    leave some tables new and some old until the next run re-applies the same raw runs). The estimate,
    16 bytes per value, is above what the compressed Parquet files take (about 2-4 bytes per value)."""
    needed = sum(rows * len(TABLES[name].schema) * 16 for name, rows in staged_rows.items()) + 256 * 1024
    free = catalog.free_bytes()
    if free < needed:
        raise LakeError(
            f"not enough free space in {catalog.location} to publish ({free // 1024} KiB free, about "
            f"{needed // 1024} KiB needed)",
            hint="the disk is full: free space and re-run; nothing was published and the raw zone is intact",
        )


def _record_rejected(
    catalog: Catalog,
    rejected: list[Rejected],
    manifests: list[dict[str, Any]],
    rebuild: bool,
    by_run_id: str,
    now: dt.datetime,
) -> int:
    """Replace the `rejected_records` of the raw runs just read by what this transform set aside (a rebuild:
    the whole table), so re-reading a run never duplicates its rows and a record that now reads is gone.
    Written before the tables are published: a publish that fails re-reads the same runs and converges.
    Returns the table's rows afterwards."""
    name = "rejected_records"
    exists = name in catalog.table_names()
    old = catalog.read(name) if exists and not rebuild else TABLES[name].schema.empty_table()
    runs = {m["run_id"] for m in manifests}
    run_of = {entry["key"]: m["run_id"] for m in manifests for entry in m["files"]}
    kept = old.filter(pc.invert(pc.is_in(old.column("raw_run_id"), pa.array(sorted(runs), pa.string()))))
    new = pa.Table.from_pylist(
        [
            {
                "raw_run_id": run_of.get(r.raw_key, r.run_id),
                "raw_file": r.raw_key,
                "line_number": r.line_number,
                "entity": r.entity,
                "playlist_id": r.playlist_id,
                "user_id": r.user_id,
                "field": r.field,
                "error": r.error,
                "rejected_at": now,
                "by_run_id": by_run_id,
            }
            for r in rejected
        ],
        schema=TABLES[name].schema,
    )
    if new.num_rows or kept.num_rows != old.num_rows or (rebuild and exists):
        catalog.overwrite(name, pa.concat_tables([kept, new]))
    return int(kept.num_rows + new.num_rows)


def _record_gaps(catalog: Catalog, manifests: list[dict[str, Any]], rebuild: bool) -> None:
    """`listening_gaps` from the manifests' recently-played gaps, so the raw zone alone rebuilds it (a rebuild
    replaces the table). A run whose gaps are already there is skipped: a publish redone after a crash
    never records a gap twice."""
    name = "listening_gaps"
    exists = name in catalog.table_names()
    done = set() if rebuild or not exists else set(catalog.read(name).column("run_id").to_pylist())
    times = ("from_played_at", "to_played_at", "detected_at")
    rows = [
        {**gap, **{k: dt.datetime.fromisoformat(gap[k]) for k in times}, "run_id": m["run_id"]}
        for m in manifests
        if m["run_id"] not in done
        for gap in m.get("gaps") or ()
    ]
    table = pa.Table.from_pylist(rows, schema=TABLES[name].schema)
    if rebuild and exists:
        catalog.overwrite(name, table)
    else:
        catalog.append(name, table)


def _raw_zone_error(exc: duckdb.Error, storage: Storage, manifests: list[dict[str, Any]]) -> LakeError:
    """Name the raw file DuckDB could not read (checked one by one, only on this failure path)."""
    for manifest in manifests:
        for entry in manifest["files"]:
            try:
                for line in gzip.decompress(storage.read(entry["key"])).splitlines():
                    if line.strip():
                        json.loads(line)
            except (OSError, EOFError, ValueError, zlib.error) as bad:
                return LakeError(
                    f"corrupted raw file {storage.uri(entry['key'])}: {type(bad).__name__}: {bad}",
                    hint="restore it from a backup or move it aside; no table was changed",
                )
    first = str(exc).strip().splitlines()[0]
    if "Out of Memory" in first:
        return LakeError(
            f"the transform ran out of memory: {first}",
            hint="raise or unset SPOTIFY_PIPELINE_MEMORY_LIMIT, or lower SPOTIFY_PIPELINE_TRANSFORM_BATCH_BYTES;"
            " no table was changed",
        )
    return LakeError(f"cannot read the raw zone: {first}", hint="no table was changed")


def _processed_runs(catalog: Catalog, snapshot_id: int | None) -> set[str]:
    """Raw runs recorded in `processed_raw_runs` at `snapshot_id` (None: the table had no rows yet)."""
    if snapshot_id is None:
        return set()
    scan = catalog.table("processed_raw_runs").scan(snapshot_id=snapshot_id)
    return set(scan.to_arrow().column("raw_run_id").to_pylist())


def current_snapshots(catalog: Catalog) -> dict[str, int | None]:
    """Each table's current snapshot id (None for a table with no snapshot yet)."""
    return {name: catalog.snapshot_id(name) for name in catalog.table_names()}


def table_row_counts(catalog: Catalog, snapshots: dict[str, int | None] | None = None) -> dict[str, int]:
    """Rows per table now, or at the given snapshots (a table with no snapshot counts 0)."""
    counts = {}
    for name, snapshot_id in (current_snapshots(catalog) if snapshots is None else snapshots).items():
        snapshot = None if snapshot_id is None else catalog.table(name).snapshot_by_id(snapshot_id)
        counts[name] = int(snapshot.summary["total-records"]) if snapshot and snapshot.summary else 0
    return counts
