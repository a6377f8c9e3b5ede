"""What `Lake` methods return: small typed dataclasses (no tuples, no dicts with optional keys), each with an
`as_dict()` that `--format json` prints as it is (numbers as numbers, timestamps in ISO 8601 UTC)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import LakeError
from .extract import ExtractSummary
from .quality.checks import CheckResult
from .query.engine import plain_value
from .tables.retention import ExpiryResult
from .transform import TransformResult

if TYPE_CHECKING:
    from .history.importer import ImportResult


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
    saved: int = 0  # lookups left out because they would add nothing the tables keep (summary.enrichment_skipped)


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
                int(counts.get("total_requests", 0)),
                int(counts.get("retries", 0)),
                int(counts.get("rate_limited", 0)),
                sum(summary.enrichment_skipped.values()),
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


@dataclass(frozen=True)
class HistoryImport:
    """`Lake.import_history()`: what a data download added. Nothing new is not an error: `run_id` is "" and
    `transform` publishes nothing (`transform.raw_runs == []`)."""

    user_id: str
    run_id: str  # the raw run written ("" when every file was already imported)
    plays: int
    files: list[dict[str, Any]]  # imported now: name, format, plays, sha256, bytes
    already_imported: list[str]
    skipped: list[str]  # not listening history
    unknown_fields: dict[str, int]  # field kept in the raw zone but not read -> files with it
    transform: TransformSummary
    detail: ImportResult = field(repr=False, compare=False)

    @property
    def imported(self) -> bool:
        return bool(self.run_id)

    @classmethod
    def of(cls, result: ImportResult) -> HistoryImport:
        return cls(
            result.user_id,
            result.run_id or "",
            result.plays,
            list(result.files),
            list(result.already_imported),
            list(result.skipped),
            dict(result.unknown_fields),
            TransformSummary.of(result.transform) if result.transform else TransformSummary(),
            result,
        )

    def as_dict(self) -> dict[str, Any]:
        return _plain(self, skip=("detail",))


def _plain(obj: Any, skip: Sequence[str] = ()) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(obj):
        if f.name in skip:
            continue
        value = getattr(obj, f.name)
        out[f.name] = _plain(value) if dataclasses.is_dataclass(value) else plain_value(value)
    return out
