"""Run the transform: pick raw runs not yet processed, build the batch, stage the merged tables, check them,
publish them table by table (publish.py) under the journal that lets a killed publish be redone.

The DuckDB temp relations the steps pass to each other (`complete`, `b_*`, `old_*`, `staged_*`, ...) and the
order that builds them are declared in transform/relations.py, which checks them as the steps run.

Over 400 lines because the publish's order is one sequence that must read top to bottom: journal written,
rejected records, tables, bookkeeping, the run's own `pipeline_runs` line, journal cleared (crash points between
each); splitting it would scatter the order a redo relies on.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import logging
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from ..config import DEFAULT_TRANSFORM_BATCH_BYTES, parse_batch_bytes
from ..errors import LakeError, QualityError
from ..history.listens import add_listened_songs, build_listen_events, listens_are_events
from ..lake.layout import manifest_key
from ..lake.raw import RawZoneReader, verify_part
from ..lake.storage import Storage
from ..quality.checks import Changes, CheckResult, failed_errors, results_rows, run_checks
from ..reliability.crashpoints import crash_point
from ..tables import replace
from ..tables.catalog import Catalog
from ..tables.contract import DATA_TABLES, LAST_SEEN_MODEL, TABLES
from . import publish
from .batch import build_batch, drop_rechecked_playlists
from .changes import build_changes
from .connection import connect, spill_parent
from .journal import PUBLISHED_TABLES, RUNS_TABLE, PublishJournal, clear_journal, read_journal, write_journal
from .merge import MERGES, Derived, ReplaceChildren, merge_sql, stage_batch_as_merged, stage_derived
from .publish import by_whole_key, ensure_space, publish_table, record_gaps, record_rejected, register_base
from .quarantine import Quarantine
from .raw import RawFile
from .relations import checked_step, timed
from .scope import differs, fresh_sql, gone_sql, kept_sql, rows_after, scope, stray_sql, unchanged_sql, whole_table
from .snapshots import current_snapshots, processed_runs, table_row_counts
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


# Raw JSON parsed per batch. Every batch costs a fixed amount (materialising its positions, one partial row per
# song, album and artist it saw), so larger batches are faster and, up to about 1 GiB, use less memory too:
# a 1M-item rebuild took 26.4 s / 2,702 MiB peak with 256 MiB batches, 22.2 s / 2,269 MiB with 1 GiB, 22.2 s /
# 2,055 MiB with 2 GiB (docs/BENCHMARKS.md).
DEFAULT_BATCH_BYTES = DEFAULT_TRANSFORM_BATCH_BYTES


def _batch_bytes() -> int:
    return parse_batch_bytes(os.environ.get("SPOTIFY_PIPELINE_TRANSFORM_BATCH_BYTES", ""))  # checked as settings are


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
    record_run: Callable[[TransformResult], None] | None = None,
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
    (the progress bar's `publish` phase). `record_run` appends the run's `pipeline_runs` line as the
    publish's last commit (marked `RUN_LINE`), so that readers see it with the tables (journal.py).
    """
    batch_bytes = batch_bytes or _batch_bytes()  # checked first: a bad setting fails even with no new data
    reader = RawZoneReader(storage)
    journal = read_journal(storage)
    if journal is not None:
        log.warning(
            "a transform that started publishing at %s was interrupted; redoing it from where the tables stood",
            journal.started_at,
        )
        rebuild = rebuild or journal.rebuild
    if not rebuild and _written_before_last_seen_model(catalog):
        log.warning(
            "songs, albums and artists were written when last_seen_at moved at every sighting; rebuilding the "
            "tables from the raw zone once, so that it is when their values last changed (docs/SCHEMA.md)"
        )
        rebuild = True
    result = TransformResult(rebuilt=rebuild)
    # Where each table stands before this transform: every merge reads these snapshots, not the current ones,
    # which differ only after an interrupted publish.
    base: dict[str, int | None] = {}
    with timed("open.snapshots"):
        if not rebuild:
            base = journal.snapshots if journal is not None else current_snapshots(catalog)
        previous_counts = table_row_counts(catalog, base)
    with timed("open.processed_runs"):
        processed = processed_runs(catalog, base.get("processed_raw_runs"))
    with timed("open.manifests"):
        todo = [m for m in reader.manifests(skip=processed) if m["run_id"] not in processed]
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
            build_batch(con, files, batch_bytes, quarantine)  # a step: timed by its own `step` decorator
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
        register_base(con, catalog, "playlist_songs", base)
        register_base(con, catalog, "playlist_changes", base)  # an emptied playlist's last run is only there
        register_base(con, catalog, "playlists", base)
        drop_rechecked_playlists(con)  # a check finding a playlist as stored changes no row
        build_changes(con)
        build_user_tables(con)
        with checked_step(con, "build_listen_events"):
            try:
                build_listen_events(con, [f.uri for f in files.get("history_export", [])])
            except duckdb.Error as exc:  # history parts are read here, not in build_batch
                raise _raw_zone_error(exc, storage, todo) from exc
        register_base(con, catalog, "songs", base)
        with checked_step(con, "add_listened_songs"):
            add_listened_songs(con)  # listened tracks become songs (album and artist filled in by `run` later)
        # Stage: each table's merged rows. A small run merges only the rows of the keys its batch holds
        # (scope.py: `staged_<t>` holds those keys' rows, `new_<t>` is the whole table after the merge); a
        # rebuild, a new table or a batch naming too many keys merges the whole table. A table whose merge
        # changed no row (no batch rows, the same rows seen again, a derived table whose inputs did not
        # change) is not published again: a commit that changes nothing is waste, and its snapshot stays the
        # one the journal records.
        changed: dict[str, bool] = {}
        scoped: dict[str, bool] = {}
        by_key: dict[str, bool] = {}  # merged by the batch's whole keys (scope.py)
        for name in DATA_TABLES:
            rule = MERGES[name]
            incremental = publish.FILTERED_PUBLISH and not rebuild and base.get(name) is not None
            if isinstance(rule, Derived):
                changed[name] = rebuild or name not in base or any(changed.get(i, True) for i in rule.inputs)
                scoped[name] = False
                if rule.changed_sql and incremental and all(scoped.get(i) for i in rule.inputs):
                    register_base(con, catalog, name, base)
                    scoped[name] = scope(
                        con, name, allowed=True, nothing=not changed[name], table_rows=previous_counts.get(name, 0)
                    )
                elif not changed[name]:
                    register_base(con, catalog, name, base)
                with checked_step(con, f"stage_{name}"):
                    if scoped[name] and rule.stage_changed is not None:
                        rule.stage_changed(con)
                    elif scoped[name]:
                        con.execute(f"CREATE TEMP TABLE staged_{name} AS {rule.changed_rows_sql}")
                    elif changed[name]:
                        stage_derived(con, name)
                    else:
                        con.execute(f"CREATE TEMP VIEW staged_{name} AS SELECT * FROM old_{name}")
                    whole_table(con, name, scoped[name])
                continue
            result.batch_rows[name] = con.execute(f"SELECT count(*) FROM b_{name}").fetchall()[0][0]
            emptied = rule.emptied if isinstance(rule, ReplaceChildren) else None
            emptied_rows = con.execute(f"SELECT count(*) FROM {emptied}").fetchall()[0][0] if emptied else 0
            changed[name] = rebuild or name not in base or result.batch_rows[name] + emptied_rows > 0
            if name not in ("playlist_songs", "playlist_changes", "playlists"):
                register_base(con, catalog, name, base)
            by_key[name] = incremental and by_whole_key(con, catalog, name)
            scoped[name] = scope(
                con, name, allowed=incremental, table_rows=previous_counts.get(name, 0), by_key=by_key[name]
            )
            with checked_step(con, f"stage_{name}"):
                if changed[name] and base.get(name) is None and stage_batch_as_merged(con, name):
                    pass  # no old rows: the batch is the merged table (merge.py)
                elif changed[name] or scoped[name]:
                    con.execute(f"CREATE TEMP TABLE staged_{name} AS {merge_sql(name, f'touched_{name}')}")
                else:
                    con.execute(f"CREATE TEMP VIEW staged_{name} AS SELECT * FROM old_{name}")
                whole_table(con, name, scoped[name], by_key[name])
            if scoped[name]:
                changed[name] = differs(con, name)
        if stage_hook is not None:
            stage_hook(con)
            changed.update({n: differs(con, n) for n in DATA_TABLES if scoped[n]})  # as tampered
        # Audit: the checks run on the staged rows (of a small run: on its changed rows, scope.py); an error
        # keeps every table as it was.
        staged_rows = {name: rows_after(con, name, scoped[name], previous_counts.get(name, 0)) for name in DATA_TABLES}
        ensure_space(catalog, staged_rows)
        now = dt.datetime.now(dt.UTC)
        with timed("checks"):
            result.checks = run_checks(
                con,
                {n: f"new_{n}" for n in DATA_TABLES},
                previous_counts,
                changes={
                    n: Changes(
                        f"staged_{n}",
                        fresh_sql(n),
                        kept_sql(n),
                        gone_sql(n),
                        stray_sql(n, by_key.get(n, False)),
                        unchanged_sql(n, by_key.get(n, False)),
                    )
                    for n in DATA_TABLES
                    if scoped[n]
                },
                rows=staged_rows,
                same_rows={"listens": "listen_events"} if listens_are_events(con) else None,
            )
        with timed("commit.quality_results"):
            catalog.append(
                "quality_results",
                pa.Table.from_pylist(
                    results_rows(result.checks, by_run_id, now), schema=TABLES["quality_results"].schema
                ),
            )
        failures = failed_errors(result.checks)
        if failures:
            names = ", ".join(f"{r.check.name} ({r.failing_rows} rows)" for r in failures)
            raise QualityError(
                f"data-quality check failed: {names}; nothing was published",
                checks=[r.check.name for r in failures],
                hint="the previous tables stay current; see the quality_results table",
            )
        # Publish: one commit per table, then the bookkeeping. (A rebuild overwrites too, so the tables'
        # earlier snapshots stay in their history, until retention.py expires them.) The journal, written
        # first, lets the next transform redo this one if it is killed before the last commit.
        if on_publish is not None:
            on_publish()
        # Readers show the tables as they stood before (the interrupted publish's own `before` on a redo).
        shown = journal.shown() if journal is not None else None
        before = shown if shown is not None else (base if not rebuild else current_snapshots(catalog))
        runs_before = before[RUNS_TABLE] if shown is not None and RUNS_TABLE in shown else _runs_snapshot(catalog)
        if any(name not in before for name in PUBLISHED_TABLES):  # not there yet, or an older journal's omission
            before = current_snapshots(catalog) | before
        before = {name: before.get(name) for name in PUBLISHED_TABLES}
        if record_run is not None or (shown is not None and RUNS_TABLE in shown):
            before[RUNS_TABLE] = runs_before  # a run's line is (or was) appended by this publish: shown after it
        write_journal(storage, PublishJournal(base, [m["run_id"] for m in todo], rebuild, before=before))
        with timed("commit.rejected_records"):  # the records set aside appear with the tables, not before
            result.rows["rejected_records"] = record_rejected(
                catalog, quarantine.rejected, todo, rebuild, by_run_id, now
            )
        with replace.sharing(con):  # the keyed replaces query through this connection's cursors
            for name in DATA_TABLES:
                result.rows[name] = staged_rows[name]
                if not changed[name]:
                    continue
                with timed(f"commit.{name}"):
                    publish_table(con, catalog, name, rebuild, base, scoped[name])
                crash_point("transform.table_committed")
        # An interrupted publish may have recorded some of these runs already: record each once.
        recorded = set() if rebuild else processed_runs(catalog, catalog.snapshot_id("processed_raw_runs"))
        processed_rows = pa.Table.from_pylist(
            [
                {"raw_run_id": m["run_id"], "processed_at": now, "by_run_id": by_run_id}
                for m in todo
                if m["run_id"] not in recorded
            ],
            schema=TABLES["processed_raw_runs"].schema,
        )
        with timed("commit.bookkeeping"):
            record_gaps(catalog, todo, rebuild)
            if rebuild:
                catalog.overwrite("processed_raw_runs", processed_rows)
            else:
                catalog.append("processed_raw_runs", processed_rows)
        if "songs" in catalog.table_names() and (rebuild or base.get("songs") is None):
            catalog.mark("songs", *LAST_SEEN_MODEL)  # written whole by this code: the model is the current one
        crash_point("transform.tables_committed")
        result.raw_runs = [m["run_id"] for m in todo]
        if record_run is not None:
            record_run(result)  # the publish's last commit: the run's line, shown with the tables
            crash_point("transform.run_recorded")
        clear_journal(storage)
        crash_point("transform.published")
    finally:
        con.close()
        quarantine.close()
    result.raw_runs = [m["run_id"] for m in todo]
    return result


def _runs_snapshot(catalog: Catalog) -> int | None:
    return catalog.snapshot_id(RUNS_TABLE) if RUNS_TABLE in catalog.table_names() else None


def _written_before_last_seen_model(catalog: Catalog) -> bool:
    """Whether the lake has songs written before `last_seen_at` meant when the values last changed
    (tables/contract.py `LAST_SEEN_MODEL`): they hold each row's last sighting, which a run keeping rows it
    sees again unchanged would otherwise keep for good, unlike a rebuild."""
    return "songs" in catalog.table_names() and not catalog.marked("songs", *LAST_SEEN_MODEL)


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


def _raw_zone_error(exc: duckdb.Error, storage: Storage, manifests: list[dict[str, Any]]) -> LakeError:
    """Name the raw file DuckDB could not read (checked one by one, only on this failure path)."""
    for manifest in manifests:
        for entry in manifest["files"]:
            if entry["key"].endswith(".parquet"):  # a history import's columnar part
                problem = verify_part(entry, storage.read(entry["key"]))
                if problem is not None:
                    return LakeError(
                        f"corrupted raw file {storage.uri(entry['key'])}: {problem}",
                        hint="restore it from a backup or move it aside; no table was changed",
                    )
                continue
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
