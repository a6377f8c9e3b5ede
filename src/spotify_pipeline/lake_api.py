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
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from .config import Settings, load_settings
from .errors import InputError, LakeError, QueryError
from .extract.extractor import Progress
from .lake.storage import Storage
from .query.engine import QueryEngine, QueryResult
from .results import (
    CheckOutcome,
    CheckReport,
    ColumnInfo,
    ExportResult,
    ExtractResult,
    HistoryImport,
    ReportInfo,
    RunInfo,
    RunResult,
    TableInfo,
    TransformSummary,
)
from .tables.catalog import Catalog

if TYPE_CHECKING:
    from .extract.poll import Poller, PollResult
    from .recommend import Evaluation, Recommendations
    from .serve.dashboard import Dashboard
    from .tables.maintenance import MaintenanceResult
    from .tables.repair import RepairResult

__all__ = ["Lake"]


# ---- the lake ----------------------------------------------------------------------------------------
class Lake:
    """A lake: its storage, table catalog, lock and query engine, decided once from a folder or S3 URI."""

    def __init__(self, settings: Settings, storage: Storage, catalog: Catalog) -> None:
        self.settings = settings
        self.storage = storage
        self.catalog = catalog
        self._poller: Poller | None = None  # `poll_once()`/`poller()`: kept, with its token, between polls

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

    def engine(
        self, *, in_memory: bool = False, timeout: float | None = None, memory_limit: str | None = None
    ) -> QueryEngine:
        """A read-only DuckDB sandbox over the tables (close it, or use it as a context manager), never half a
        run's publish (query/consistent.py). A lake without tables is a LakeError (exit 6)."""
        from .query.consistent import consistent_snapshots

        snapshots = consistent_snapshots(self.catalog, storage=self.storage)
        return QueryEngine(
            self.catalog, in_memory=in_memory, timeout=timeout, memory_limit=memory_limit, snapshots=snapshots
        )

    def dashboard(
        self,
        host: str = "127.0.0.1",
        port: int = 8000,
        *,
        query_timeout: float | None = 30.0,
        memory_limit: str = "2GB",
        allowed_hosts: Sequence[str] = (),
    ) -> Dashboard:
        """The read-only dashboard over this lake (`spotify-pipeline serve`), listening but not yet serving:
        call `.serve_forever()` (or `.start()` in a thread) and `.stop()`. Its query engine (as
        `engine(in_memory=True)`) lives in a worker process, reopened when the tables change and replaced
        every 10 reopens (serve/engine_process.py). A local lake only (ConfigError); a lake without tables
        is a LakeError (exit 6); a port in use is a ConfigError (exit 2)."""
        from .errors import ConfigError
        from .serve.dashboard import Dashboard
        from .transform.connection import duckdb_size

        if self.remote:
            raise ConfigError(
                "serve works on a local lake", hint="for an S3 lake use `query --engine athena` or `report`"
            )
        duckdb_size(memory_limit, "--memory-limit")
        self.engine().close()  # fail now, with the usual message, if the lake has no tables
        try:
            return Dashboard(
                Path(self.catalog.root),
                host,
                port,
                query_timeout=query_timeout,
                memory_limit=memory_limit,
                allowed_hosts=tuple(allowed_hosts),
            )
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}", hint="try another --port") from exc

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

    def import_history(self, path: str | Path, *, user: str | None = None) -> HistoryImport:
        """Import a Spotify data download (zip, folder or one JSON file) into `listens`, then publish it."""
        from .history.importer import import_history

        return HistoryImport.of(import_history(self.settings, Path(path), user=user))

    def maintain(self, *, keep_days: float | None = None) -> MaintenanceResult:
        """Compact small table files, expire snapshots older than `keep_days` (default: the
        `table_history_days` setting) and delete orphan files, under the lake lock (`spotify-pipeline
        maintain`; the AWS maintenance function calls it daily). Refused while a publish is unfinished."""
        from .tables.maintenance import maintain

        with self.lock("maintain"):
            days = self.settings.table_history_days if keep_days is None else keep_days
            return maintain(self.storage, self.catalog, days)

    def repair(self) -> RepairResult:
        """Make a copied or moved local lake independent of its original, or register its tables again after
        catalog.db was lost (repair.py). A folder with no lake in it is a LakeError (exit 6)."""
        from .errors import ConfigError
        from .lake.layout import CATALOG_FILE, WAREHOUSE_DIR
        from .tables.repair import repair_lake

        if self.remote:
            raise ConfigError("repair works on a local lake", hint="an S3 lake's tables are registered in Glue")
        root = Path(self.catalog.root)
        if not (root / CATALOG_FILE).exists() and not (root / WAREHOUSE_DIR).is_dir():
            raise LakeError(f"no lake at {root}", hint="check --lake; a lake has catalog.db or warehouse/")
        return repair_lake(root)

    def poll_once(self) -> PollResult:
        """One poll of recently played (`spotify-pipeline poll` does this every --every): one request when
        nothing is new, else a `run --source recently-played`. The lake keeps the poller (and its token)."""
        return self.poller().poll_once()

    def poller(self, *, extract_only: bool = False, isolate: bool | None = None) -> Poller:
        """The lake's `poll.Poller` (created once), for a loop (`.run(every, echo)`); close() releases it.
        `extract_only` (the Lambda): new plays go to the raw zone, the scheduled transform publishes them.
        `isolate` (default: unless `extract_only`): each run in a child process that exits, so a process
        that polls for weeks does not keep what each run leaves in memory (poll.py)."""
        from .extract.poll import Poller

        if self._poller is None:
            self._poller = Poller(self.settings, extract_only=extract_only, isolate=isolate)
        return self._poller

    def close(self) -> None:
        """Release what the lake holds open between calls (the poller's HTTP client)."""
        if self._poller is not None:
            self._poller.close()
            self._poller = None

    # -- reading --
    def tables(self) -> list[TableInfo]:
        """Every table with its current row count and columns: every table of the contract, one not created yet
        with 0 rows (an import creates only the tables it fills; queries read such a table as empty).
        A lake without tables is a LakeError (exit 6)."""
        from .tables.contract import TABLES
        from .transform.snapshots import table_row_counts

        counts = table_row_counts(self.catalog) if self.catalog.exists() else {}
        if not counts:
            raise LakeError(
                f"no tables in the lake at {self.catalog.location}",
                hint="run `spotify-pipeline run` (or `spotify-pipeline demo`) first",
            )
        return [
            TableInfo(
                name,
                counts.get(name, 0),
                [ColumnInfo(f.name, str(f.type)) for f in TABLES[name].schema] if name in TABLES else [],
            )
            for name in sorted(set(counts) | set(TABLES))
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

    def athena(self, sql: str, *, timeout: float = 300.0) -> QueryResult:
        """One read-only query (DuckDB's dialect) run by Amazon Athena over the Glue tables of an S3 lake, each
        table at the snapshot `engine` would open (never half a run's publish), results read back from
        `athena_output` (default: `<lake>/athena-results/`)."""
        from .errors import ConfigError
        from .query.athena import run_athena
        from .query.consistent import consistent_snapshots

        if not self.remote:
            raise ConfigError(
                f"Athena reads tables in Glue; the lake {self.settings.lake} is a folder",
                hint="use an s3:// lake (--lake / SPOTIFY_PIPELINE_LAKE), or the default duckdb engine",
            )
        settings = self.settings
        return run_athena(
            sql,
            database=settings.glue_database,
            workgroup=settings.athena_workgroup,
            output=settings.athena_output or f"{settings.lake.rstrip('/')}/athena-results/",
            timeout_s=timeout,
            snapshots=consistent_snapshots(self.catalog, storage=self.storage),
        )

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
        from .quality.lake_checks import check_lake

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
        from .quality.lake_checks import recent_runs

        return [RunInfo(*row) for row in recent_runs(self.catalog, limit).rows]

    def export(self, table: str, path: str | Path, *, format: str = "parquet") -> ExportResult:
        """A table's current rows to Parquet, CSV or JSON lines, written atomically. An unknown table is an
        InputError (exit 2)."""
        from .query.export import export_table

        if format not in ("parquet", "csv", "json"):
            raise InputError(f"unknown export format {format!r}", hint="parquet, csv or json")
        target = Path(path)
        return ExportResult(table, export_table(self.catalog, table, format, target), target)

    # -- recommendations (recommend/service.py; this is only the way in) --
    def recommend(
        self,
        playlist: str | None = None,
        *,
        for_user: bool = False,
        user: str | None = None,
        n: int = 50,
        rebuild: bool = False,
    ) -> Recommendations:
        """Songs that continue `playlist` (ID, URI or URL), or with `for_user` songs for `user` (default: the
        user with most data), stored in `recommendations`. A lake without tables is a LakeError (exit 6)."""
        from . import recommend as rec
        from .ids import parse_playlist_ref

        if (playlist is None) == (not for_user):
            raise InputError("give exactly one of playlist=... or for_user=True", hint="Lake.recommend")
        ref = None if for_user else parse_playlist_ref(playlist or "")  # bad input first, lake or not
        self._need_tables()
        with self.lock("recommend"):
            if ref is None:
                found = rec.recommend_for_user(self.storage, self.catalog, user, n, rebuild=rebuild)
            else:
                found = rec.recommend_for_playlist(self.storage, self.catalog, ref, n, rebuild=rebuild)
            rec.save_recommendations(self.catalog, found)
        return found

    def evaluate_recommendations(self, *, seed: int = 0) -> Evaluation:
        """The held-out evaluation of the model against a popularity baseline (`recommend --evaluate`)."""
        from . import recommend as rec

        self._need_tables()
        return rec.evaluate_lake(self.catalog, seed=seed)

    def _need_tables(self) -> None:
        """Refuse a lake with no tables; a table not created yet reads as empty (`tables`)."""
        if not self.catalog.exists() or not self.catalog.table_names():
            raise LakeError(
                f"no tables in the lake at {self.catalog.location}",
                hint="run `spotify-pipeline run` (or `spotify-pipeline demo`) first",
            )
