"""A long-lived poll does not keep what each run leaves in memory: a poll's run happens in a child process that
exits (isolated.py), the check stays in the polling process with its token. Real simulator over HTTP, real
lake, real processes."""

from __future__ import annotations

import os
from pathlib import Path

from spotify_pipeline import Lake

from ..conftest import SimulatorFactory, settings_for
from ..history.test_gaps_and_poll import add_plays, rows
from ..test_isolated import children, gone
from .test_user_login import do_login


def test_a_polls_run_happens_in_a_child_process_that_exits(
    make_simulator: SimulatorFactory, tmp_path: Path, isolated_config: Path
) -> None:
    server = make_simulator(playlists=3, items_per_playlist=20)
    do_login(server, isolated_config)
    lake = Lake.open(settings=settings_for(server, tmp_path / "lake", auth="user"))
    before = children()
    try:
        first = lake.poll_once()  # no cursor yet: a run
        assert first.ran and first.report is not None and first.report.status == "succeeded", first.line
        assert first.run_pid is not None and first.run_pid != os.getpid() and gone(first.run_pid)
        assert not lake.poll_once().ran  # nothing new: the check alone, here
        add_plays(server, 7)
        second = lake.poll_once()
        assert second.ran and "7 new plays" in second.line, second.line
        assert second.run_pid not in (None, os.getpid(), first.run_pid) and gone(second.run_pid)
    finally:
        lake.close()
    assert children() == before
    assert rows(tmp_path / "lake", "SELECT count(*) FROM plays")[0][0] == 37
    assert rows(tmp_path / "lake", "SELECT status, count(*) FROM pipeline_runs GROUP BY 1") == [("succeeded", 2)]


def test_a_run_refused_in_the_child_comes_back_as_the_same_one_line_skip(
    make_simulator: SimulatorFactory, tmp_path: Path, isolated_config: Path
) -> None:
    """The lake's lock held by another run: the child's LakeError comes back and the poll says `skipped`."""
    server = make_simulator(playlists=3, items_per_playlist=20)
    do_login(server, isolated_config)
    lake = Lake.open(settings=settings_for(server, tmp_path / "lake", auth="user"))
    try:
        with lake.lock("run"):
            result = lake.poll_once()
    finally:
        lake.close()
    assert not result.ran and " skipped: " in result.line and "\n" not in result.line, result.line
