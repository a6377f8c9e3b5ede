"""What people see: a progress bar on a terminal, log lines elsewhere, and run summaries."""

from __future__ import annotations

import collections
import logging
import os
import sys
import threading
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..extract.extractor import ExtractSummary
from ..extract.extractor import Progress as ProgressSink
from ..tables.retention import ExpiryResult
from ..transform import TransformResult

log = logging.getLogger("spotify_pipeline")


PROGRESS_SECONDS = 5.0  # off a terminal: one progress line this often (SPOTIFY_PIPELINE_PROGRESS_SECONDS)
progress_log = logging.getLogger("spotify_pipeline.progress")


class TerminalProgress(ProgressSink):
    """What a run is doing, as it does it: the phase (extract, enrich, transform, publish), playlists finished
    of the total, pages, items, requests and an ETA. On a terminal a live bar on stderr; otherwise a plain
    log line every few seconds (JSON with --log-format json, through the logging set up by the CLI)."""

    def __init__(self, total_playlists: int, enabled: bool | None = None, every: float | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.every = every if every is not None else _progress_seconds()
        self.counters: collections.Counter[str] = collections.Counter()
        self.phase_name = "extract"
        self.total: int | None = total_playlists
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._bar = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}[/bold]"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} playlists"),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._task = self._bar.add_task("extract", total=total_playlists, detail="")

    def __enter__(self) -> TerminalProgress:
        self._started = time.monotonic()
        if self.enabled:
            self._bar.start()
        elif self.every > 0:
            if progress_log.level == logging.NOTSET:  # shown even where other info lines are not (text logs)
                progress_log.setLevel(logging.INFO)
            self._ticker = threading.Thread(target=self._tick, name="progress", daemon=True)
            self._ticker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        if self.enabled:
            self._bar.stop()

    def phase(self, name: str, total: int | None = None) -> None:
        with self._lock:
            self.phase_name = name
            if name == "extract":
                self.total = total
        if self.enabled:
            if name == "extract":
                self._bar.update(self._task, description=name, total=total)
            else:  # no playlist count after extraction: the bar shows the phase and the running totals
                self._bar.update(self._task, description=name)

    def update(self, **counters: int) -> None:
        with self._lock:
            self.counters.update(counters)
            detail = f"{self.counters['pages']} pages, {self.counters['items']} items"
            stats = getattr(self, "stats", None)
            if stats is not None:
                detail += f", {stats.total_requests} requests, {stats.retries} retries"
        if self.enabled:
            self._bar.update(self._task, advance=counters.get("playlists", 0), detail=detail)

    def eta_seconds(self) -> float | None:
        """Seconds left in the extraction at the pace so far (None before the first playlist, or after)."""
        done, total = self.counters["playlists"], self.total
        if self.phase_name != "extract" or not done or not total:
            return None
        return (time.monotonic() - self._started) / done * max(0, total - done)

    def line(self) -> tuple[str, dict[str, Any]]:
        """The progress line and its fields (for --log-format json)."""
        with self._lock:
            stats = getattr(self, "stats", None)
            fields: dict[str, Any] = {
                "phase": self.phase_name,
                "playlists_done": self.counters["playlists"],
                "playlists_total": self.total or 0,
                "pages": self.counters["pages"],
                "items": self.counters["items"],
                "requests": stats.total_requests if stats is not None else 0,
            }
        eta = self.eta_seconds()
        fields["eta_seconds"] = round(eta) if eta is not None else None
        text = (
            f"progress {fields['phase']}: {fields['playlists_done']}/{fields['playlists_total']} playlists, "
            f"{fields['pages']} pages, {fields['items']} items, {fields['requests']} requests"
        )
        if fields["phase"] == "extract":
            text += f", ETA {fields['eta_seconds']}s" if eta is not None else ", ETA ?"
        return text, fields

    def _tick(self) -> None:
        while not self._stop.wait(self.every):
            text, fields = self.line()
            progress_log.info(text, extra={"fields": fields})


def _progress_seconds() -> float:
    """SPOTIFY_PIPELINE_PROGRESS_SECONDS (0 turns the lines off), else PROGRESS_SECONDS; anything but a finite,
    non-negative number is a ConfigError (exit 2), like every other setting."""
    import math

    from ..errors import ConfigError

    value = os.environ.get("SPOTIFY_PIPELINE_PROGRESS_SECONDS", "").strip()
    if not value:
        return PROGRESS_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigError(
            f"SPOTIFY_PIPELINE_PROGRESS_SECONDS={value!r} is not a number of seconds",
            hint="use e.g. 5, or 0 for no progress lines",
        )
    return seconds


def _saved(skipped: dict[str, int]) -> str:
    """`; saved N (why n, ...)`: lookups left out because they would add nothing the tables keep."""
    if not skipped:
        return ""
    return f"; saved {sum(skipped.values())} ({', '.join(f'{k} {v}' for k, v in sorted(skipped.items()))})"


def extract_lines(summary: ExtractSummary) -> list[str]:
    req = summary.requests
    by_endpoint = ", ".join(f"{k} {v}" for k, v in sorted(req.get("requests", {}).items()))
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(summary.item_kinds.items()))
    lines = [
        f"run {summary.run_id}: {summary.status}",
        f"playlists: {summary.playlists_checked} checked, {summary.playlists_changed} changed, "
        f"{summary.playlists_unchanged} unchanged, {len(summary.metadata_only)} metadata only, "
        f"{len(summary.failed)} failed",
        f"items: {summary.items}" + (f" ({kinds})" if kinds else ""),
        f"enriched: {summary.artists_enriched} artists, {summary.albums_enriched} albums"
        + (f" (one at a time: batch {', '.join(summary.batch_refused)} refused)" if summary.batch_refused else ""),
        f"requests: {req.get('total_requests', 0)} ({by_endpoint or 'none'}); retries {req.get('retries', 0)}, "
        f"429s {req.get('rate_limited', 0)}" + _saved(summary.enrichment_skipped),
        f"raw zone: {summary.files_written} file{'s' if summary.files_written != 1 else ''}, "
        f"{_bytes(summary.bytes_written)}",
    ]
    if summary.user_id or summary.sources:
        parts = ", ".join(f"{k} {v}" for k, v in summary.sources.items())
        lines.append(f"user {summary.user_id}: {parts or 'no user sources'}")
    if summary.metadata_only:
        lines.append(
            f"note: {len(summary.metadata_only)} playlists were stored as metadata only: this app's access mode "
            "returns items only for playlists the user owns or collaborates on"
        )
    for gap in summary.gaps:
        from ..extract.sources import gap_warning

        lines.append(f"warning: {gap_warning(gap)}")
    for reason in summary.failed.values():
        lines.append(f"failed: {reason}")
    if summary.stop_reason:
        lines.append(f"stopped: {summary.stop_reason}")
    return lines


def transform_lines(result: TransformResult) -> list[str]:
    if not result.raw_runs:
        return ["tables: up to date (no new raw runs)"]
    # rejected_records (also in `rows`, for pipeline_runs) gets its own line below when there are any
    rows = ", ".join(f"{name} {count}" for name, count in result.rows.items() if name != "rejected_records")
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(result.item_types.items()))
    lines = [
        f"transform: {len(result.raw_runs)} raw run(s){' (rebuild)' if result.rebuilt else ''}",
        f"tables: {rows}",
    ]
    if kinds:
        lines.append(f"playlist positions this batch: {kinds}")
    if result.rejected:
        lines.append(
            f"warning: {result.rejected} raw record(s) set aside in rejected_records, the rest published"
            " (see `spotify-pipeline check`; after a fix, `spotify-pipeline transform --rebuild` reads them again)"
        )
    return lines


def history_lines(history: ExpiryResult | None) -> list[str]:
    if history is None or not history.snapshots:
        return []
    return [
        f"table history: expired {history.snapshots} old snapshot(s), deleted {history.files_deleted} unused "
        f"file(s) ({_bytes(history.data_bytes_deleted)} of table data)"
    ]


def _bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def echo_lines(lines: list[str], echo: Any) -> None:
    for line in lines:
        echo(line)
