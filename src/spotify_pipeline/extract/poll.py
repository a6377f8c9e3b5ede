"""`spotify-pipeline poll`: near-real-time capture of recently played, in one long-running process.

Every `--every` (default 5 minutes) one poll: a check, `GET /me/player/recently-played?after=<cursor>&limit=1`
with the token the process holds in memory, which is the only request when nothing new was played; only
when there is something new (or no cursor yet: the first poll) does it do a normal
`run --source recently-played` (extract + transform, under the lake's lock, recorded in `pipeline_runs`).
No lock is held between polls, so `run`, `transform`, `report` and `query` work while it waits.
Ctrl-C or SIGTERM stops it: between polls at once (exit 0); during a run, the run is recorded
`interrupted` as usual (exit 130/143).

Each run happens in a short-lived child process (isolated.py): a transform leaves native memory behind
(DuckDB, Arrow, glibc arenas: ~0.1-1 MiB a run, more on a big lake; docs/BENCHMARKS.md, "Memory of a
long-lived process") that a process polling for weeks would otherwise keep until the OOM killer stopped it.
The polling process itself only checks, with the token it holds; a run costs a fresh start (imports, table
metadata read again: +2.7 s a run at 30k items, load 12), and only when there is something new. The
Lambda (`extract_only`) runs in-process: it is short-lived already.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import pipeline
from ..config import Settings
from ..errors import InputError, LakeError, ResponseError
from ..isolated import in_child
from .state import ExtractState

SOURCE = "recently-played"
_EVERY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h)?\s*$")
_UNITS = {None: 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}


def parse_every(text: str) -> float:
    """`5m`, `30s`, `1h` or plain seconds -> seconds (at least 1)."""
    match = _EVERY.match(text)
    if not match or float(match.group(1)) <= 0:
        raise InputError(f"bad interval {text!r}", hint="use e.g. --every 5m, 30s or 1h")
    return max(1.0, float(match.group(1)) * _UNITS[match.group(2)])


@dataclass
class PollResult:
    at: dt.datetime
    ran: bool
    line: str
    report: pipeline.RunReport | None = None
    run_pid: int | None = None  # the process the run happened in (a child that has exited, when isolated)


def run_new_plays(settings: Settings, extract_only: bool) -> tuple[pipeline.RunReport, int]:
    """One `run --source recently-played` (in whichever process calls it) and that process's id."""
    report = pipeline.run(settings, [], sources=[SOURCE], extract_only=extract_only, lock=not extract_only)
    return report, os.getpid()


class Poller:
    """One poll at a time (`poll_once`), or a loop (`run`) that sleeps on an Event (so it stops at once)."""

    def __init__(
        self, settings: Settings, client: Any = None, *, extract_only: bool = False, isolate: bool | None = None
    ) -> None:
        self.settings = settings
        self.extract_only = extract_only  # Lambda: the scheduled transform publishes; no lake lock is taken
        self.isolate = not extract_only if isolate is None else isolate  # each run in a child process
        self.storage, _ = pipeline.lake_parts(settings)
        self._client = client
        self.user: str | None = None
        self.running = False  # inside a run (a stop now interrupts it; it is recorded `interrupted`)

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = pipeline.make_client(self.settings)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def _cursor(self) -> str | None:
        cursors = ExtractState.load(self.storage).cursors
        if self.user is None:  # the user whose cursor this lake keeps, if there is exactly one
            users = [k.split(":", 1)[1] for k in cursors if k.startswith("recently_played:")]
            self.user = users[0] if len(users) == 1 else None
        return cursors.get(f"recently_played:{self.user}") if self.user else None

    def has_new_plays(self) -> bool:
        """One request: is anything newer than the cursor? (True without a cursor: nothing to compare.)"""
        cursor = self._cursor()
        if cursor is None:
            return True
        page = self.client.get("me/player/recently-played", {"limit": 1, "after": cursor})
        items = page.data.get("items") if isinstance(page.data, dict) else None
        if not isinstance(items, list):
            raise ResponseError(f"page without items from {page.url}", url=page.url)
        return bool(items)

    def poll_once(self) -> PollResult:
        now = dt.datetime.now(dt.UTC)
        if not self.has_new_plays():
            return PollResult(now, False, f"{now:%H:%M:%S} nothing new (1 request)")
        self.running = True  # stays True if the run is interrupted: the caller tells the two stops apart
        try:
            if self.isolate:
                report, pid = in_child(run_new_plays, self.settings, self.extract_only)
            else:
                report, pid = run_new_plays(self.settings, self.extract_only)
        except LakeError as exc:  # another run holds the lake's lock: try again at the next poll
            self.running = False
            return PollResult(now, False, f"{now:%H:%M:%S} skipped: {exc}")
        self.running = False
        ex = report.extract
        if ex is not None and ex.user_id:
            self.user = ex.user_id
        plays = ex.sources.get(SOURCE, 0) if ex else 0
        requests = ex.requests.get("total_requests", 0) if ex else 0
        gaps = f", {len(ex.gaps)} gap(s) recorded" if ex and ex.gaps else ""
        line = f"{now:%H:%M:%S} run {report.run_id}: {report.status}, {plays} new plays ({requests} requests){gaps}"
        return PollResult(now, True, line, report, pid)

    def run(
        self,
        every: float,
        echo: Callable[[str], None],
        stop: threading.Event | None = None,
        max_polls: int | None = None,
    ) -> int:
        """Poll every `every` seconds until `stop` is set (or KeyboardInterrupt); the number of polls."""
        stop = stop or threading.Event()
        polls = 0
        while not stop.is_set():
            started = dt.datetime.now(dt.UTC)
            result = self.poll_once()
            polls += 1
            echo(result.line)
            if max_polls is not None and polls >= max_polls:
                break
            elapsed = (dt.datetime.now(dt.UTC) - started).total_seconds()
            stop.wait(max(0.0, every - elapsed))
        return polls
