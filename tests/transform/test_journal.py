"""What the publish journal tells readers (`shown`): every published table as it stood before the publish, also
from a journal written before readers used it (no `before`)."""

from __future__ import annotations

import json
from pathlib import Path

from spotify_pipeline.lake.layout import PUBLISH_JOURNAL_KEY
from spotify_pipeline.lake.storage import LocalStorage
from spotify_pipeline.transform.journal import (
    PUBLISHED_TABLES,
    RUNS_TABLE,
    PublishJournal,
    read_journal,
    write_journal,
)


def test_before_round_trips_and_names_every_published_table(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    before: dict[str, int | None] = {name: None for name in PUBLISHED_TABLES} | {"songs": 7, "playlists": 8}
    write_journal(storage, PublishJournal({}, ["r1"], rebuild=True, before=before))
    journal = read_journal(storage)
    assert journal is not None and journal.before == before and journal.shown() == before


def test_a_journal_without_before_shows_a_non_rebuilds_base_and_nothing_for_a_rebuild(tmp_path: Path) -> None:
    """An older journal: a non-rebuild's `snapshots` are where the published tables stood (tables it does not
    publish, such as pipeline_runs, are left out: readers show them current); a rebuild's are empty, so it
    says nothing and readers show the tables as they are."""
    storage = LocalStorage(tmp_path)
    (tmp_path / PUBLISH_JOURNAL_KEY).parent.mkdir(parents=True)
    body = {"rebuild": False, "snapshots": {"songs": 1, "pipeline_runs": 2}, "raw_runs": ["r1"], "started_at": "x"}
    (tmp_path / PUBLISH_JOURNAL_KEY).write_text(json.dumps(body))
    journal = read_journal(storage)
    assert journal is not None and journal.before is None
    shown = journal.shown()
    assert shown is not None and shown["songs"] == 1 and "pipeline_runs" not in shown
    assert shown["playlists"] is None  # made by that publish: empty
    assert set(shown) == set(PUBLISHED_TABLES) - {"rejected_records"}  # committed before such a journal
    (tmp_path / PUBLISH_JOURNAL_KEY).write_text(json.dumps({**body, "rebuild": True, "snapshots": {}}))
    rebuild = read_journal(storage)
    assert rebuild is not None and rebuild.shown() is None


def test_pipeline_runs_is_shown_as_before_only_when_the_publish_appends_a_runs_line(tmp_path: Path) -> None:
    """A run's publish records `pipeline_runs` in `before` (its line is its last commit): readers then start
    from there. An import's publish appends no line and records none: readers show pipeline_runs current."""
    storage = LocalStorage(tmp_path)
    before: dict[str, int | None] = {name: 1 for name in PUBLISHED_TABLES}
    write_journal(storage, PublishJournal({}, ["r1"], before={**before, RUNS_TABLE: 5}))
    journal = read_journal(storage)
    assert journal is not None and journal.shown() == {**before, RUNS_TABLE: 5}
    write_journal(storage, PublishJournal({}, ["r1"], before=before))
    journal = read_journal(storage)
    assert journal is not None and journal.shown() == before and RUNS_TABLE not in before
