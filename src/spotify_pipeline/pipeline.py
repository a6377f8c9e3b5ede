"""One pipeline run: extract -> raw zone -> transform -> tables, recorded in `pipeline_runs`.

The CLI, the demo and (later) the Lambda handlers all call these functions; only settings differ.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from .config import Settings
from .errors import ConfigError, PipelineError, interruption_reason
from .extract import (
    ClientCredentialsAuth,
    ExtractOptions,
    Extractor,
    ExtractSummary,
    RetryPolicy,
    SpotifyClient,
)
from .extract.auth import Auth
from .extract.extractor import Progress
from .extract.ratelimit import RateLimiter
from .extract.user_auth import SecretsManagerTokenStore, TokenStore, UserAuth
from .history.enrichment import tracks_to_enrich
from .lake.layout import new_run_id
from .lake.lock import LakeLock, S3LakeLock
from .lake.storage import Storage, open_storage
from .reliability.alerts import send_alert
from .tables.catalog import Catalog, open_catalog
from .tables.contract import TABLES
from .tables.retention import ExpiryResult, expire_history
from .transform import TransformResult, transform
from .transform.journal import RUN_LINE

log = logging.getLogger(__name__)


@dataclass
class RunReport:
    run_id: str
    started_at: dt.datetime
    extract: ExtractSummary | None = None
    transform: TransformResult | None = None
    history: ExpiryResult | None = None  # old table snapshots expired after the transform
    status: str = "running"
    error: str | None = None
    finished_at: dt.datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def lake_parts(settings: Settings) -> tuple[Storage, Catalog]:
    """The lake's storage and table catalog: a folder + embedded catalog, or S3 + Glue. Only this differs."""
    return open_storage(settings.lake), open_catalog(settings.lake, settings.glue_database)


def lake_lock(storage: Storage, catalog: Catalog, command: str) -> Any:
    if catalog.remote:
        return S3LakeLock(storage, command)
    return LakeLock(catalog.root, command)


def make_auth(settings: Settings) -> Auth:
    """The saved user login (`spotify-pipeline login`) when asked for or, with auth=auto, when there is one;
    otherwise client credentials."""
    store = SecretsManagerTokenStore(settings.login_secret) if settings.login_secret else TokenStore()
    saved = store.load() if settings.auth in ("auto", "user") else None
    if settings.auth == "user" and saved is None:
        raise ConfigError("no saved Spotify login", hint="run `spotify-pipeline login` first")
    if saved is not None:
        return UserAuth(store, saved, settings.timeout)
    settings.require_credentials()
    return ClientCredentialsAuth(settings.accounts_url, settings.client_id, settings.client_secret, settings.timeout)


def make_client(settings: Settings, on_retry: Any = None) -> SpotifyClient:
    policy = RetryPolicy(max_retries=settings.max_retries, max_retry_wait=settings.max_retry_wait)
    return SpotifyClient(
        settings.api_url,
        make_auth(settings),
        policy=policy,
        limiter=RateLimiter(settings.rate_limit),
        concurrency=settings.concurrency,
        timeout=settings.timeout,
        on_retry=on_retry,
    )


def extract(
    settings: Settings,
    playlist_ids: Iterable[str],
    *,
    full: bool = False,
    progress: Progress | None = None,
    run_id: str | None = None,
    sources: Iterable[str] = (),
) -> ExtractSummary:
    storage, catalog = lake_parts(settings)
    options = ExtractOptions(
        full=full,
        enrich_ttl=dt.timedelta(days=settings.enrich_ttl_days),
        concurrency=settings.concurrency,
        page_size=settings.page_size,
        tracks=tuple(tracks_to_enrich(catalog)) if settings.track_budget else (),
        track_budget=settings.track_budget,
    )
    sources = list(sources)
    with make_client(settings) as client:
        if sources and not isinstance(client.auth, UserAuth):
            raise ConfigError(
                f"--source {' '.join(sources)} reads a user's library, and there is no user login",
                hint="run `spotify-pipeline login` first (client credentials have no user)",
            )
        writer_options = {"part_target_bytes": settings.raw_part_bytes}
        extractor = Extractor(client, storage, options, progress, writer_options=writer_options)
        return extractor.run(playlist_ids, run_id, sources)


def run(
    settings: Settings,
    playlist_ids: Iterable[str],
    *,
    full: bool = False,
    extract_only: bool = False,
    transform_only: bool = False,
    rebuild: bool = False,
    progress: Progress | None = None,
    stage_hook: Callable[[Any], None] | None = None,
    sources: Iterable[str] = (),
    lock: bool = True,
) -> RunReport:
    """Extract (unless transform_only) then transform (unless extract_only); record the run either way.
    `lock=False` is only for extract-only runs that may run side by side.

    Holds the lake's lock throughout: a second run on the same lake is refused. Every run is recorded in
    `pipeline_runs`, and one that did not succeed says why and is alerted to SPOTIFY_PIPELINE_ALERT_WEBHOOK
    when set: `failed` (a PipelineError's message, or `TypeName: message` for anything unexpected, then
    re-raised), `interrupted` (Ctrl-C or SIGTERM, re-raised), `stopped` (a 429 above the cap) or `partial`.
    If the extraction fails (no playlist extracted, credentials or token refused) nothing is transformed.
    """
    if not lock and not extract_only:
        raise ValueError("only extract-only runs may skip the lake lock")
    started = dt.datetime.now(dt.UTC)
    report = RunReport(new_run_id(started, secrets.token_hex(3)), started)
    storage, catalog = lake_parts(settings)
    if not extract_only:
        catalog.check()  # a copied, moved or damaged lake is refused before anything is extracted
    # Extract-only runs may go in parallel (Lambda batches): each writes its own raw run and never touches
    # a table. Anything that publishes holds the lake's lock.
    guard = lake_lock(storage, catalog, "transform" if transform_only else "run") if lock else contextlib.nullcontext()
    recorded = False  # the run's line is in pipeline_runs: by its publish, or at the end

    def record_in_publish(result: TransformResult) -> None:
        """The run's line as its publish's last commit (transform/journal.py): readers see it with its tables."""
        nonlocal recorded
        report.transform = result
        _outcome(report)
        report.finished_at = dt.datetime.now(dt.UTC)
        recorded = _record(catalog, report, in_publish=True)

    with guard:
        try:
            if not transform_only:
                report.extract = extract(
                    settings, playlist_ids, full=full, progress=progress, run_id=report.run_id, sources=sources
                )
            if not extract_only:
                if progress is not None:
                    progress.phase("transform")
                report.transform = transform(
                    storage,
                    catalog,
                    rebuild=rebuild,
                    by_run_id=report.run_id,
                    stage_hook=stage_hook,
                    on_publish=(lambda: progress.phase("publish")) if progress is not None else None,
                    record_run=record_in_publish,
                )
                report.history = _expire_history(catalog, settings.table_history_days)
            _outcome(report)
        except PipelineError as exc:
            report.status, report.error = "failed", str(exc)
            raise
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM turned into `Interrupted` by the CLI
            report.status, report.error = "interrupted", interruption_reason(exc)
            raise
        except Exception as exc:  # a bug or an unforeseen library error: still recorded, with its type
            report.status, report.error = "failed", f"{type(exc).__name__}: {exc}"
            raise
        finally:
            if not recorded:
                report.finished_at = dt.datetime.now(dt.UTC)
                _record(catalog, report)
            elif report.status != "succeeded":  # after its publish (old snapshots' expiry): the line stands
                log.warning(
                    "run %s %s after publishing: pipeline_runs records it as published", report.run_id, report.status
                )
            if report.status != "succeeded":
                send_alert(f"spotify-pipeline run {report.run_id} {report.status}: {report.error or 'see logs'}")
            elif report.transform is not None and report.transform.rejected:
                send_alert(
                    f"spotify-pipeline run {report.run_id} succeeded, but {report.transform.rejected} raw record(s)"
                    " set aside in rejected_records (see `spotify-pipeline check`); the rest is published"
                )
    return report


def _expire_history(catalog: Catalog, keep_days: float) -> ExpiryResult | None:
    """Table snapshots past their retention, expired once the run's tables are published. Best effort: the
    run has done its job, so a failure here is logged, and the next run tries again."""
    try:
        return expire_history(catalog, keep_days)
    except Exception as exc:  # pyiceberg and the object store raise many types; none may fail the run
        log.warning("could not expire old table snapshots: %s", exc)
        return None


def _status(report: RunReport) -> str:
    if report.extract is None:
        return "succeeded"
    return report.extract.status


def _outcome(report: RunReport) -> None:
    """The status and error of a run that raised nothing: its extraction's."""
    report.status = _status(report)
    if report.extract and report.extract.stop_reason:
        report.error = report.extract.stop_reason
    elif report.extract and report.extract.failed:
        report.error = "; ".join(report.extract.failed.values())


def _record(catalog: Catalog, report: RunReport, *, in_publish: bool = False) -> bool:
    """Append the run to `pipeline_runs` (best effort: a broken catalog must not hide the real error);
    False if it could not. `in_publish`: as its publish's last commit, marked so (transform/journal.py)."""
    ex = report.extract
    row = {
        "run_id": report.run_id,
        "started_at": report.started_at,
        "finished_at": report.finished_at,
        "status": report.status,
        "playlists_checked": ex.playlists_checked if ex else None,
        "playlists_changed": ex.playlists_changed if ex else None,
        "playlists_failed": len(ex.failed) if ex else None,
        "api_requests": ex.requests.get("total_requests") if ex else None,
        "items_extracted": ex.items if ex else None,
        "raw_runs_processed": len(report.transform.raw_runs) if report.transform else None,
        "rows_per_table": json.dumps(report.transform.rows, sort_keys=True) if report.transform else None,
        "error": report.error,
    }
    try:
        catalog.append(
            "pipeline_runs",
            pa.Table.from_pylist([row], schema=TABLES["pipeline_runs"].schema),
            {RUN_LINE: report.run_id} if in_publish else None,
        )
    except Exception as exc:  # best effort: a failed record must never hide the run's own outcome
        log.warning("could not record the run in pipeline_runs: %s", exc)
        return False
    return True
