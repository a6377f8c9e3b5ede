"""What people see: a progress bar on a terminal, log lines elsewhere, and run summaries."""

from __future__ import annotations

import collections
import logging
import sys
import threading
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from ..extract.extractor import ExtractSummary
from ..extract.extractor import Progress as ProgressSink
from ..tables.retention import ExpiryResult
from ..transform import TransformResult

log = logging.getLogger("spotify_pipeline")


class TerminalProgress(ProgressSink):
    """A live bar: playlists done of total, pages, items. Falls back to nothing when not a terminal."""

    def __init__(self, total_playlists: int, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.counters: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self._bar = Progress(
            SpinnerColumn(),
            TextColumn("[bold]extract[/bold]"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} playlists"),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._task = self._bar.add_task("extract", total=total_playlists, detail="")

    def __enter__(self) -> TerminalProgress:
        if self.enabled:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._bar.stop()

    def update(self, **counters: int) -> None:
        with self._lock:
            self.counters.update(counters)
            detail = f"{self.counters['pages']} pages, {self.counters['items']} items"
            stats = getattr(self, "stats", None)
            if stats is not None:
                detail += f", {stats.total_requests} requests, {stats.retries} retries"
        if self.enabled:
            self._bar.update(self._task, advance=counters.get("playlists", 0), detail=detail)


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
        f"429s {req.get('rate_limited', 0)}",
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
