"""A long-lived poll does not keep what each run leaves in memory: a poll's run happens in a child process that
exits (isolated.py), the check stays in the polling process with its token. Real simulator over HTTP, real
lake, real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from spotify_pipeline import Lake
from spotify_pipeline.simulator import SimulatedSpotify
from spotify_pipeline.simulator.faults import Fault, FaultPlan

from ..conftest import SimulatorFactory, settings_for, sim_env
from ..history.test_gaps_and_poll import add_plays, rows, stats
from ..test_isolated import children, gone, reaped
from .test_user_login import do_login


def logged_in_lake(make_simulator: SimulatorFactory, tmp_path: Path, config: Path) -> tuple[SimulatedSpotify, Lake]:
    """A simulator with 3 playlists, its user logged in, and a lake under `tmp_path` polling as that user."""
    server = make_simulator(playlists=3, items_per_playlist=20)
    do_login(server, config)
    return server, Lake.open(settings=settings_for(server, tmp_path / "lake", auth="user"))


def test_a_polls_run_happens_in_a_child_process_that_exits(
    make_simulator: SimulatorFactory, tmp_path: Path, isolated_config: Path
) -> None:
    server, lake = logged_in_lake(make_simulator, tmp_path, isolated_config)
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
    _, lake = logged_in_lake(make_simulator, tmp_path, isolated_config)
    try:
        with lake.lock("run"):
            result = lake.poll_once()
    finally:
        lake.close()
    assert not result.ran and " skipped: " in result.line and "\n" not in result.line, result.line


def test_ctrl_c_during_a_polls_run_stops_the_child_records_the_run_and_leaves_no_child(
    make_simulator: SimulatorFactory, tmp_path: Path, isolated_config: Path
) -> None:
    """`poll` as a real process; its first run's `/me` answered only after 60 s (a slow fault): Ctrl-C to the
    poll process alone (the child is in a session of its own) is forwarded, the run is recorded
    `interrupted`, the child exits and poll exits 130 with one line, no traceback."""
    plan = FaultPlan()
    server = make_simulator(faults=plan, playlists=3, items_per_playlist=20)
    do_login(server, isolated_config)
    plan.add(Fault("slow", count=1, path_prefix="/v1/me", delay_ms=60_000))
    base = {k: v for k, v in os.environ.items() if not k.startswith("SPOTIFY_") or k == "SPOTIFY_PIPELINE_CONFIG_DIR"}
    tokens = stats(server)["by_route"].get("token", 0)
    process = subprocess.Popen(
        [sys.executable, "-m", "spotify_pipeline", "poll", "--every", "1s"],
        env={**base, **sim_env(server, tmp_path / "lake")},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with reaped(process):
        deadline = time.monotonic() + 120
        # The child's run has its token (the poller asks none before its first run): it is now at `/me`.
        while stats(server)["by_route"].get("token", 0) == tokens:
            assert time.monotonic() < deadline and process.poll() is None, process.communicate()
            time.sleep(0.1)
        running = children_of(process.pid)
        assert len(running) == 1, running
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "poll stopped during a run (recorded interrupted)" in out and "Traceback" not in err
    assert all(gone(pid) for pid in running)
    recorded = rows(tmp_path / "lake", "SELECT status, error FROM pipeline_runs")
    assert recorded == [("interrupted", "interrupted by the user (Ctrl-C)")], recorded


def children_of(pid: int) -> set[int]:
    found = set()
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        if f"\nPPid:\t{pid}\n" in text:
            found.add(int(status.parent.name))
    return found
