"""The library side of `spotify-pipeline check` and `runs`: quality checks and run history on demand."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field

import pyarrow as pa

from ..errors import LakeError
from ..lake.layout import new_run_id
from ..lake.raw import RawZoneReader, verify_part
from ..lake.storage import Storage
from ..query.engine import QueryEngine, QueryResult
from ..tables.catalog import Catalog
from ..tables.contract import DATA_TABLES, TABLES
from .checks import CheckResult, results_rows, run_checks


@dataclass
class CheckReport:
    run_id: str
    results: list[CheckResult]
    raw_problems: list[str]
    rejected: int = 0  # rows of rejected_records: raw records the transform set aside
    rejected_sample: list[str] = field(default_factory=list)  # a few of them, one line each
    not_recorded: LakeError | None = None  # why the results are not in quality_results (a read-only lake)


REJECTED_SAMPLE = 5


def check_lake(storage: Storage, catalog: Catalog, *, raw: bool = False) -> CheckReport:
    """Run the quality checks on the published tables (and, with `raw`, read every raw file back), and
    record them in `quality_results`. On a lake this process cannot write, the checks still run and the
    report says why they were not recorded."""
    run_id = "check-" + new_run_id(dt.datetime.now(dt.UTC), secrets.token_hex(3))
    with QueryEngine(catalog) as engine:
        relations = {name: name for name in DATA_TABLES}
        results = run_checks(engine.con, relations)
        rejected, sample = _rejected_records(engine)
    not_recorded = None
    try:
        catalog.append(
            "quality_results",
            pa.Table.from_pylist(
                results_rows(results, run_id, dt.datetime.now(dt.UTC)), schema=TABLES["quality_results"].schema
            ),
        )
    except LakeError as exc:
        not_recorded = exc
    problems = verify_raw_zone(storage) if raw else []
    return CheckReport(run_id, results, problems, rejected, sample, not_recorded)


def _rejected_records(engine: QueryEngine) -> tuple[int, list[str]]:
    """How many raw records the transform set aside, and the first few as `file:line entity playlist ...`."""
    if "rejected_records" not in engine.tables:
        return 0, []
    (count,) = engine.execute("SELECT count(*) FROM rejected_records").rows[0]
    sample = engine.execute(
        "SELECT raw_file, line_number, entity, playlist_id, field, error FROM rejected_records"
        " ORDER BY raw_file, line_number LIMIT ?",
        [REJECTED_SAMPLE],
    ).rows
    return int(count), [
        f"{raw_file}:{line} {entity} playlist={playlist or '-'} field={field or '?'}: {error}"
        for raw_file, line, entity, playlist, field, error in sample
    ]


def verify_raw_zone(storage: Storage) -> list[str]:
    """Every file each manifest lists exists, decompresses, holds one JSON object per line, and matches its
    manifest entry: size, checksum, uncompressed size and number of records (those the manifest records)."""
    problems = []
    for manifest in RawZoneReader(storage).manifests():
        for entry in manifest["files"]:
            key = entry["key"]
            if not storage.exists(key):
                problems.append(f"{key}: missing (listed by run {manifest['run_id']})")
                continue
            problem = verify_part(entry, storage.read(key))
            if problem is not None:
                problems.append(f"{key}: {problem} (run {manifest['run_id']})")
    return problems


RUNS_SQL = """
SELECT r.run_id, r.status, r.started_at,
       round(epoch(r.finished_at) - epoch(r.started_at), 1) AS seconds,
       r.api_requests AS requests, r.items_extracted AS items,
       r.playlists_changed AS changed, r.playlists_failed AS failed,
       (SELECT count(*) FILTER (WHERE NOT q.passed) || '/' || count(*) FROM quality_results q
         WHERE q.run_id = r.run_id) AS checks_failed,
       r.error
FROM pipeline_runs r ORDER BY r.started_at DESC LIMIT ?
"""


def recent_runs(catalog: Catalog, limit: int = 20) -> QueryResult:
    with QueryEngine(catalog) as engine:
        if "quality_results" not in engine.tables:
            return engine.execute(
                RUNS_SQL.replace(
                    "(SELECT count(*) FILTER (WHERE NOT q.passed) || '/' || count(*) FROM quality_results q\n"
                    "         WHERE q.run_id = r.run_id)",
                    "NULL",
                ),
                [limit],
            )
        return engine.execute(RUNS_SQL, [limit])
