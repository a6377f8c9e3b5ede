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

    _state/publish.json   {"rebuild": false, "snapshots": {"songs": 123, ...}, "raw_runs": [...],
                           "before": {"songs": 123, "listens": null, ...}, ...}
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

# Every table a publish commits (runner.py: the data tables, then `processed_raw_runs` and `listening_gaps`).
PUBLISHED_TABLES = (*DATA_TABLES, "processed_raw_runs", "listening_gaps")

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
        """Each of `PUBLISHED_TABLES` as readers show it while this publish is unfinished (None: not recorded)."""
        if self.before is None and self.rebuild:
            return None
        before = self.snapshots if self.before is None else self.before
        return {name: before.get(name) for name in PUBLISHED_TABLES}


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


def write_journal(storage: Storage, journal: PublishJournal) -> None:
    body = {
        "rebuild": journal.rebuild,
        "snapshots": journal.snapshots,
        "raw_runs": journal.raw_runs,
        "started_at": journal.started_at,
        "before": journal.before,
    }
    storage.write_atomic(PUBLISH_JOURNAL_KEY, json.dumps(body, indent=1).encode(), overwrite=True)


def clear_journal(storage: Storage) -> None:
    storage.delete(PUBLISH_JOURNAL_KEY)
