"""The publish journal: what makes a transform killed between two table commits finish on the next run.

Tables are committed one at a time (Iceberg has no multi-table commit), so a kill while publishing leaves
some tables new and some old. Before the first commit, the transform writes down where every table stood
(its snapshot id) and which raw runs it applies; after the last commit it deletes the note. A transform
that finds the note redoes the interrupted one from those snapshots, not from the half-published tables:
every merge, the change history and the quality gate then see exactly what the interrupted transform saw,
and the tables it had already committed are overwritten with the same rows (plus any newer raw runs).

The note also says what readers show meanwhile (`before`): every table the publish commits, as it stood
before the first commit of this publish (or of the interrupted one it redoes). While the note exists a
reader such as `serve` opens those snapshots (query/consistent.py), never half a publish.

A run's own `pipeline_runs` line is the publish's last commit, so readers switch to it with the tables: its
commit is marked (`RUN_LINE`), and while the note exists readers show `pipeline_runs` up to the first marked
line after `before` (every failed run's line before it included: those are never hidden).

    _state/publish.json   {"rebuild": false, "snapshots": {"songs": 123, ...}, "raw_runs": [...],
                           "before": {"songs": 123, "listens": null, ..., "pipeline_runs": 77}, ...}
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from ..errors import LakeError
from ..lake.layout import PUBLISH_JOURNAL_KEY
from ..lake.storage import Storage
from ..tables.contract import DATA_TABLES

# Every table a publish commits (runner.py: `rejected_records`, the data tables, then `processed_raw_runs` and
# `listening_gaps`).
PUBLISHED_TABLES = ("rejected_records", *DATA_TABLES, "processed_raw_runs", "listening_gaps")
# A run's publish also appends its own line to `pipeline_runs`, last, marking that commit with this snapshot
# summary property (value: the run id). Other lines (a failed run's, an extract-only run's) are appended
# unmarked, outside any publish, and readers always show them (query/consistent.py).
RUNS_TABLE = "pipeline_runs"
RUN_LINE = "spotify-pipeline.publish-run-line"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PublishJournal:
    """Where each table stood before a publish began (None: the table did not exist yet)."""

    snapshots: dict[str, int | None]
    raw_runs: list[str]
    rebuild: bool = False
    started_at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat())
    # Each table the publish commits, as readers see it until the publish ends (None: no table yet). None
    # in a journal written before readers used it: then only a non-rebuild's `snapshots` say it.
    before: dict[str, int | None] | None = None

    def shown(self) -> dict[str, int | None] | None:
        """Each of `PUBLISHED_TABLES` as readers show it while this publish is unfinished (None: not recorded),
        and `pipeline_runs` as it stood before when the publish appends a run's line (`RUNS_TABLE` in
        `before`): readers show it from there up to the first line a publish appended."""
        if self.before is None and self.rebuild:
            return None
        if self.before is None:  # that version committed rejected_records before its journal: shown current
            shown = {name: self.snapshots.get(name) for name in PUBLISHED_TABLES if name != "rejected_records"}
        else:  # a table an older journal's `before` leaves out was not published under it: shown current
            shown = {name: self.before.get(name) for name in PUBLISHED_TABLES if name in self.before}
        if self.before is not None and RUNS_TABLE in self.before:
            shown[RUNS_TABLE] = self.before[RUNS_TABLE]
        return shown


def read_journal(storage: Storage) -> PublishJournal | None:
    """The journal of a publish that did not finish, if any."""
    if not storage.exists(PUBLISH_JOURNAL_KEY):
        return None
    try:
        data: dict[str, Any] = json.loads(storage.read(PUBLISH_JOURNAL_KEY))
        return PublishJournal(
            snapshots=_snapshot_ids(data["snapshots"]),
            raw_runs=[str(r) for r in data["raw_runs"]],
            rebuild=bool(data.get("rebuild", False)),
            started_at=str(data.get("started_at", "")),
            before=None if data.get("before") is None else _snapshot_ids(data["before"]),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise LakeError(
            f"the publish journal {storage.uri(PUBLISH_JOURNAL_KEY)} is unreadable: {exc}",
            hint="an earlier transform stopped while publishing; run `spotify-pipeline transform --rebuild`",
        ) from exc


def _snapshot_ids(data: Any) -> dict[str, int | None]:
    return {str(k): (None if v is None else int(v)) for k, v in data.items()}


def write_journal(storage: Storage, journal: PublishJournal, key: str = PUBLISH_JOURNAL_KEY) -> None:
    """Write the journal (atomically) at `key`: the journal's own place, or a repair's staging copy."""
    body = {
        "rebuild": journal.rebuild,
        "snapshots": journal.snapshots,
        "raw_runs": journal.raw_runs,
        "started_at": journal.started_at,
        "before": journal.before,
    }
    storage.write_atomic(key, json.dumps(body, indent=1).encode(), overwrite=True)


def runs_shown(table: Any, before: int | None) -> int | None:
    """The `pipeline_runs` snapshot readers show while a publish that appends a run's line is unfinished:
    the current one, or the one before the first line a publish appended after `before` (the snapshot the
    journal recorded; None: the table had none). Walks back from `table`'s (a pyiceberg table's) current
    snapshot, usually zero or one step (one line per run). If `before` is no ancestor of the current
    snapshot (the table was rewritten), nothing can be told apart: the current one."""
    snapshot = table.current_snapshot()
    current = shown = None if snapshot is None else int(snapshot.snapshot_id)
    while snapshot is not None and snapshot.snapshot_id != before:
        if snapshot.summary is not None and snapshot.summary.get(RUN_LINE):
            shown = snapshot.parent_snapshot_id
        parent = snapshot.parent_snapshot_id
        snapshot = None if parent is None else table.snapshot_by_id(parent)
    if snapshot is None and before is not None:
        return current
    return shown


def clear_journal(storage: Storage) -> None:
    storage.delete(PUBLISH_JOURNAL_KEY)
