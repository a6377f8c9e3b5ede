"""`Lake`: the one way in. Open a lake once (a folder or s3://bucket/prefix), then run, query and check it.

    from spotify_pipeline import Lake

    lake = Lake.open("./lake")
    result = lake.run(playlists=["37i9dQZF1DXcBWIGoYBM5M"])
    print(result.playlists.changed, result.requests.total)
    table = lake.query("SELECT name, popularity FROM songs ORDER BY popularity DESC LIMIT 10")  # pyarrow

The CLI, the Lambda handlers and the demo are clients of this object. Every method returns a small typed
dataclass (or an Arrow table); failures are `PipelineError`s with an exit code (errors.py). docs/API.md
has runnable examples (tests/test_api_docs.py executes them).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from .catalog import Catalog
from .config import Settings, load_settings
from .errors import InputError, LakeError, QueryError
from .extract import ExtractSummary
from .extract.extractor import Progress
from .lake.storage import Storage
from .quality import CheckResult
from .query import QueryEngine, QueryResult, plain_value
from .retention import ExpiryResult
from .transform import TransformResult

if TYPE_CHECKING:
    from .history.importer import ImportResult

__all__ = [
    "CheckOutcome",
    "CheckReport",
    "ColumnInfo",
    "ExportResult",
    "ExtractResult",
    "Lake",
    "PlaylistCounts",
    "ReportInfo",
    "RequestCounts",
    "RunInfo",
    "RunResult",
    "TableInfo",
    "TransformSummary",
]


# ---- results -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PlaylistCounts:
    checked: int = 0
    changed: int = 0  # extracted again: new, or a new snapshot_id
    unchanged: int = 0
    failed: int = 0
    failures: dict[str, str] = field(default_factory=dict)  # playlist id -> why


@dataclass(frozen=True)
class RequestCounts:
    total: int = 0
    retries: int = 0
    rate_limited: int = 0  # answered 429


@dataclass(frozen=True)
class ExtractResult:
    """One extraction into the raw zone. `summary` has every detail the extractor records."""

    run_id: str
    status: str  # succeeded | partial | stopped | failed | interrupted
    playlists: PlaylistCounts
    requests: RequestCounts
    items: int
    bytes_written: int
    files_written: int
    stop_reason: str  # "" unless stopped on a long Retry-After
    summary: ExtractSummary = field(repr=False, compare=False)

    @property
    def seconds(self) -> float:
        """How long the extraction took."""
        if not self.summary.finished_at:
            return 0.0
        return (
            dt.datetime.fromisoformat(self.summary.finished_at) - dt.datetime.fromisoformat(self.summary.started_at)
        ).total_seconds()

    @classmethod
    def of(cls, summary: ExtractSummary) -> ExtractResult:
        counts = summary.requests
        return cls(
            run_id=summary.run_id,
            status=summary.status,
            playlists=PlaylistCounts(
                summary.playlists_checked,
                summary.playlists_changed,
                summary.playlists_unchanged,
                len(summary.failed),
                dict(summary.failed),
            ),
            requests=RequestCounts(
                int(counts.get("total_requests", 0)), int(counts.get("retries", 0)), int(counts.get("rate_limited", 0))
            ),
            items=summary.items,
            bytes_written=summary.bytes_written,
            files_written=summary.files_written,
            stop_reason=summary.stop_reason or "",
            summary=summary,
        )

    def as_dict(self) -> dict[str, Any]:
        return _plain(self, skip=("summary",))


@dataclass(frozen=True)
class TransformSummary:
    """What a transform published: raw runs read, rows per table after the merge, records set aside."""

    run_id: str = ""  # the run recorded in pipeline_runs
    raw_runs: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    rebuilt: bool = False
    rejected: int = 0
    snapshots_expired: int = 0  # old table snapshots expired after the transform
    detail: TransformResult = field(default_factory=TransformResult, repr=False, compare=False)
    history: ExpiryResult | None = field(default=None, repr=False, compare=False)  # None: expiry not run or failed

    @classmethod
    def of(cls, result: TransformResult, history: ExpiryResult | None = None, run_id: str = "") -> TransformSummary:
        return cls(
            run_id,
            list(result.raw_runs),
            dict(result.rows),
            result.rebuilt,
            result.rejected,
            history.snapshots if history else 0,
            result,
            history,
        )

    def as_dict(self) -> dict[str, Any]:
        return _plain(self, skip=("detail", "history"))


@dataclass(frozen=True)
class RunResult:
    """`Lake.run()`: the extraction, then the transform, recorded in `pipeline_runs`."""

    run_id: str
    status: str  # succeeded | partial | stopped
    error: str  # "" when nothing went wrong
    started_at: dt.datetime
    finished_at: dt.datetime
    extract: ExtractResult
    transform: TransformSummary

    @property
    def playlists(self) -> PlaylistCounts:
        return self.extract.playlists

    @property
    def requests(self) -> RequestCounts:
        return self.extract.requests

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "error": self.error,
            "started_at": plain_value(self.started_at),
            "finished_at": plain_value(self.finished_at),
            "extract": self.extract.as_dict(),
            "transform": self.transform.as_dict(),
        }


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    description: str
    severity: str  # error | warning
    failing_rows: int

    @property
    def passed(self) -> bool:
        return self.failing_rows == 0

    @classmethod
    def of(cls, result: CheckResult) -> CheckOutcome:
        return cls(result.check.name, result.check.description, result.check.severity, result.failing_rows)


@dataclass(frozen=True)
class CheckReport:
    """`Lake.check()`; iterating it gives each check's outcome."""

    run_id: str
    checks: list[CheckOutcome]
    raw_problems: list[str] = field(default_factory=list)  # with raw=True: raw files missing or not as listed
    rejected: int = 0  # raw records the transform set aside (rejected_records)
    rejected_sample: list[str] = field(default_factory=list)
    not_recorded: str = ""  # why the results are not in quality_results ("" when they are)
    not_recorded_error: LakeError | None = field(default=None, repr=False, compare=False)

    def __iter__(self) -> Iterator[CheckOutcome]:
        return iter(self.checks)

    @property
    def failed(self) -> list[CheckOutcome]:
        """Failed error-severity checks (warnings are reported, never failed)."""
        return [c for c in self.checks if not c.passed and c.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.raw_problems

    def as_dict(self) -> dict[str, Any]:
        out = _plain(self, skip=("not_recorded_error",))
        out["checks"] = [{**dataclasses.asdict(c), "passed": c.passed} for c in self.checks]
        out["failed"] = len(self.failed)
        return out


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    type: str


@dataclass(frozen=True)
class TableInfo:
    name: str
    rows: int
    columns: list[ColumnInfo]

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class RunInfo:
    """One row of `pipeline_runs`, newest first (`Lake.runs()`). Counts are None for a transform-only run."""

    run_id: str
    status: str
    started_at: dt.datetime
    seconds: float | None
    requests: int | None
    items: int | None
    changed: int | None
    failed: int | None
    checks_failed: str | None  # "failed/total" quality checks of this run
    error: str | None

    def as_dict(self) -> dict[str, Any]:
        return {k: plain_value(v) for k, v in dataclasses.asdict(self).items()}


@dataclass(frozen=True)
class ReportInfo:
    name: str
    title: str
    description: str

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ExportResult:
    table: str
    rows: int
    path: Path

    def as_dict(self) -> dict[str, Any]:
        return {"table": self.table, "rows": self.rows, "path": str(self.path)}


def _plain(obj: Any, skip: Sequence[str] = ()) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(obj):
        if f.name in skip:
            continue
        value = getattr(obj, f.name)
        out[f.name] = _plain(value) if dataclasses.is_dataclass(value) else plain_value(value)
    return out


# ---- the lake ----------------------------------------------------------------------------------------
class Lake:
    """A lake: its storage, table catalog, lock and query engine, decided once from a folder or S3 URI."""

    def __init__(self, settings: Settings, storage: Storage, catalog: Catalog) -> None:
        self.settings = settings
        self.storage = storage
        self.catalog = catalog

    @classmethod
    def open(cls, path_or_uri: str | Path | None = None, *, settings: Settings | None = None, **options: Any) -> Lake:
        """A lake folder or `s3://bucket/prefix` (default: settings, then SPOTIFY_PIPELINE_LAKE, then ./lake).
        `settings` (config.load_settings) default to the environment and ./spotify-pipeline.toml; keyword
        `options` override single settings (`concurrency=4`, `api_url=...`). Nothing is read or created yet."""
        from .pipeline import lake_parts

        overrides = {k: v for k, v in options.items() if v is not None}
        if path_or_uri is not None:
            overrides["lake"] = str(path_or_uri)
        if settings is None:
            settings = load_settings(overrides)
        elif overrides:
            settings = dataclasses.replace(settings, **overrides)
        storage, catalog = lake_parts(settings)
        return cls(settings, storage, catalog)

    def __repr__(self) -> str:
        return f"Lake({self.location!r})"

    @property
    def location(self) -> str:
        return str(self.catalog.location)

    @property
    def remote(self) -> bool:
        return bool(self.catalog.remote)

    def lock(self, command: str = "api") -> contextlib.AbstractContextManager[Any]:
        """The lake's lock (one writer at a time), for work outside these methods."""
        from .pipeline import lake_lock

        return lake_lock(self.storage, self.catalog, command)  # type: ignore[no-any-return]

    def engine(self, *, in_memory: bool = False, timeout: float | None = None) -> QueryEngine:
        """A read-only DuckDB sandbox over the tables (close it, or use it as a context manager).
        A lake without tables is a LakeError (exit 6)."""
        return QueryEngine(self.catalog, in_memory=in_memory, timeout=timeout)

    # -- writing --
    def run(
        self,
        playlists: Iterable[str] = (),
        *,
        sources: Iterable[str] = (),
        full: bool = False,
        progress: Progress | None = None,
    ) -> RunResult:
        """Extract the playlists (IDs, URIs or URLs) and user sources, then publish: `spotify-pipeline run`."""
        from . import pipeline
        from .ids import parse_playlist_refs

        ids, sources = parse_playlist_refs(list(playlists)), list(sources)
        if not ids and not sources:
            raise InputError("no playlists given", hint="pass playlists=[ID, ...] or sources=[...]")
        report = pipeline.run(self.settings, ids, full=full, progress=progress, sources=sources)
        assert report.extract is not None and report.transform is not None  # pipeline.run raises otherwise
        return RunResult(
            report.run_id,
            report.status,
            report.error or "",
            report.started_at,
            report.finished_at or report.started_at,
            ExtractResult.of(report.extract),
            TransformSummary.of(report.transform, report.history, report.run_id),
        )

    def extract(
        self,
        playlists: Iterable[str] = (),
        *,
        sources: Iterable[str] = (),
        full: bool = False,
        progress: Progress | None = None,
        lock: bool = True,
    ) -> ExtractResult:
        """Extract into the raw zone only (no table changes): `spotify-pipeline extract`. `lock=False` lets
        extract-only batches run side by side (the Lambda fan-out)."""
        from . import pipeline
        from .ids import parse_playlist_refs

        ids, sources = parse_playlist_refs(list(playlists)), list(sources)
        if not ids and not sources:
            raise InputError("no playlists given", hint="pass playlists=[ID, ...] or sources=[...]")
        report = pipeline.run(
            self.settings, ids, full=full, extract_only=True, progress=progress, sources=sources, lock=lock
        )
        assert report.extract is not None  # pipeline.run raises when the extraction does not happen
        return ExtractResult.of(report.extract)

    def transform(self, *, rebuild: bool = False) -> TransformSummary:
        """Publish raw runs not yet processed (idempotent); `rebuild` recreates every table from the raw zone."""
        from . import pipeline

        report = pipeline.run(self.settings, [], transform_only=True, rebuild=rebuild)
        assert report.transform is not None  # pipeline.run raises when the transform does not happen
        return TransformSummary.of(report.transform, report.history, report.run_id)

    def import_history(self, path: str | Path, *, user: str | None = None) -> ImportResult:
        """Import a Spotify data download into `listens` (history/importer.py's ImportResult)."""
        from .history.importer import import_history

        return import_history(self.settings, Path(path), user=user)

    # -- reading --
    def tables(self) -> list[TableInfo]:
        """Every table with its current row count and columns. A lake without tables is a LakeError (exit 6)."""
        from .tables import TABLES
        from .transform.runner import table_row_counts

        counts = table_row_counts(self.catalog) if self.catalog.exists() else {}
        if not counts:
            raise LakeError(
                f"no tables in the lake at {self.catalog.location}",
                hint="run `spotify-pipeline run` (or `spotify-pipeline demo`) first",
            )
        return [
            TableInfo(
                name,
                counts[name],
                [ColumnInfo(f.name, str(f.type)) for f in TABLES[name].schema] if name in TABLES else [],
            )
            for name in sorted(counts)
        ]

    def query(
        self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> pa.Table:
        """One read-only SELECT over the tables, as an Arrow table (`rows()` for Python values)."""
        with self.engine(timeout=timeout) as engine:
            engine.check_read_only(sql)
            timer = threading.Timer(timeout, engine.con.interrupt) if timeout else None
            if timer:
                timer.daemon = True
                timer.start()
            try:
                return engine.con.sql(sql, params=params or None).to_arrow_table()
            except duckdb.Error as exc:  # the same one line as `spotify-pipeline query`
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise QueryError(f"SQL error: {first}", hint=f"tables: {', '.join(engine.tables)}") from exc
            finally:
                if timer:
                    timer.cancel()

    def rows(
        self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> QueryResult:
        """One read-only SELECT: column names and rows of Python values (`.columns`, `.rows`)."""
        with self.engine(timeout=timeout) as engine:
            return engine.execute(sql, params)

    @staticmethod
    def reports() -> list[ReportInfo]:
        """The named reports, in the order `report --list` shows them (no lake needed)."""
        from .reports import LISTENING_ORDER, REPORT_ORDER, all_reports

        found = all_reports()
        return [ReportInfo(n, found[n].title, found[n].description) for n in (*REPORT_ORDER, *LISTENING_ORDER)]

    def report(self, name: str, **params: str) -> QueryResult:
        """A named report's rows (`playlist="ID"`, ...). An unknown name is an InputError (exit 2)."""
        from .reports import get_report

        report = get_report(name)  # before opening the engine: a bad name is bad input, lake or not
        with self.engine() as engine:
            return engine.execute(report.render({k: str(v) for k, v in params.items()}))

    def check(self, *, raw: bool = False) -> CheckReport:
        """Run the data-quality checks (recorded in quality_results); `raw` also reads back every raw file."""
        from .checks_cli import check_lake

        found = check_lake(self.storage, self.catalog, raw=raw)
        return CheckReport(
            found.run_id,
            [CheckOutcome.of(r) for r in found.results],
            list(found.raw_problems),
            found.rejected,
            list(found.rejected_sample),
            str(found.not_recorded) if found.not_recorded else "",
            found.not_recorded,
        )

    def runs(self, limit: int = 20) -> list[RunInfo]:
        """Recent runs from `pipeline_runs`, newest first."""
        from .checks_cli import recent_runs

        return [RunInfo(*row) for row in recent_runs(self.catalog, limit).rows]

    def export(self, table: str, path: str | Path, *, format: str = "parquet") -> ExportResult:
        """A table's current rows to Parquet, CSV or JSON lines, written atomically. An unknown table is an
        InputError (exit 2)."""
        from .exporting import export_table

        if format not in ("parquet", "csv", "json"):
            raise InputError(f"unknown export format {format!r}", hint="parquet, csv or json")
        target = Path(path)
        return ExportResult(table, export_table(self.catalog, table, format, target), target)
