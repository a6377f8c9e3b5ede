"""`listens` staged as a view of every `listen_events` row (the rule dropped no event: a first import of one
download) takes the counts of its checks from the same checks of `listen_events` (quality/checks.py
`same_rows`): the 1M rows are read once, not twice. A broken row still fails both tables' checks; `listens`
rows of their own (the rule dropped some event) are checked on their own."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from spotify_pipeline import Lake
from spotify_pipeline.config import load_settings
from spotify_pipeline.errors import QualityError
from spotify_pipeline.history.importer import import_history
from spotify_pipeline.pipeline import lake_parts
from spotify_pipeline.transform import transform

from .test_history_layout import USER, _account, _extended

KEY_CHECKS = ("listen_events.key_unique_not_null", "listens.key_unique_not_null")


def _raw_run(lake: Path, folder: Path, files: dict[str, list[dict[str, Any]]]) -> str:
    """The download's raw run written, its transform not run yet: returns the run's id."""
    folder.mkdir()
    for name, elements in files.items():
        (folder / name).write_text(json.dumps(elements))
    result = import_history(load_settings({"lake": str(lake)}, env={}), folder, user=USER, run_transform=False)
    assert result.run_id is not None
    return result.run_id


def _checks_run(caplog: pytest.LogCaptureFixture) -> set[str]:
    """The checks whose query ran (each logs its step), not those that took a twin's count."""
    steps = [r.getMessage().split()[1] for r in caplog.records if r.getMessage().startswith("step check.")]
    return {step.removeprefix("check.").rstrip(":") for step in steps}


def _results(lake: Path) -> dict[str, int]:
    rows = Lake.open(settings=load_settings({"lake": str(lake)}, env={})).query(
        "SELECT check_name, failing_rows FROM quality_results"
    )
    return {r["check_name"]: r["failing_rows"] for r in rows.to_pylist() if r["check_name"].startswith("listen")}


def test_a_duplicate_event_fails_both_tables_checks_counted_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lake = tmp_path / "lake"
    run_id = _raw_run(lake, tmp_path / "export", {"Streaming_History_Audio_0.json": [_extended(n) for n in range(30)]})
    storage, catalog = lake_parts(load_settings({"lake": str(lake)}, env={}))

    def duplicate(con: Any) -> None:
        con.execute("INSERT INTO staged_listen_events SELECT * FROM staged_listen_events LIMIT 1")

    with caplog.at_level(logging.DEBUG, logger="spotify_pipeline"), pytest.raises(QualityError) as raised:
        transform(storage, catalog, by_run_id=run_id, stage_hook=duplicate)
    assert set(KEY_CHECKS) <= set(raised.value.checks)
    ran = _checks_run(caplog)
    assert "listen_events.key_unique_not_null" in ran and "listens.key_unique_not_null" not in ran
    assert "listen_events.values_valid" in ran and "listens.values_valid" not in ran
    results = _results(lake)
    assert results["listens.key_unique_not_null"] == results["listen_events.key_unique_not_null"] == 1
    assert results["listens.values_valid"] == results["listen_events.values_valid"] == 0


def test_listens_with_rows_of_their_own_are_checked_on_their_own(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The account data repeats the extended plays: the rule drops those events, so `listens` is a table of
    its own rows, and its checks read them."""
    lake = tmp_path / "lake"
    files = {
        "Streaming_History_Audio_0.json": [_extended(n) for n in range(30)],
        "StreamingHistory_music_0.json": [_account(n) for n in range(10)],
    }
    run_id = _raw_run(lake, tmp_path / "export", files)
    storage, catalog = lake_parts(load_settings({"lake": str(lake)}, env={}))
    with caplog.at_level(logging.DEBUG, logger="spotify_pipeline"):
        result = transform(storage, catalog, by_run_id=run_id)
    assert result.rows["listen_events"] == 40 and result.rows["listens"] == 30
    assert set(KEY_CHECKS) <= _checks_run(caplog)
    assert all(v == 0 for v in _results(lake).values())
