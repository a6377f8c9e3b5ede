"""The dashboard never shows half a publish: not on its first open, not after its worker died, not when a run on
another host left its lock behind, whatever the lake's lock says.

A run commits its tables one at a time. Here a real `spotify-pipeline run` process is paused (SIGSTOP, by its
own crash point) right after some of its table commits, so the lake on disk really is half-published while a
dashboard opens over it, over real HTTP. Each table's rows are compared through a fingerprint (rows and a sum
of row hashes) with the lake before the run and after it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from spotify_pipeline.lake.layout import PUBLISH_JOURNAL_KEY
from spotify_pipeline.lake.lock import LOCK_NAME
from spotify_pipeline.query.engine import QueryEngine
from spotify_pipeline.serve.dashboard import Dashboard
from spotify_pipeline.simulator import SimulatedSpotify
from spotify_pipeline.tables.catalog import Catalog
from spotify_pipeline.tables.contract import DATA_TABLES

from ..conftest import SimulatorFactory, cli, sim_env
from .test_engine_process import DAY, change_tables, changing_lake, exited, newest  # noqa: F401 (a fixture)

# What a transform publishes: every data table, then its bookkeeping.
PUBLISHED = (*DATA_TABLES, "processed_raw_runs", "listening_gaps")
FINGERPRINT = " UNION ALL ".join(
    f"SELECT '{name}' AS t, count(*) AS n, coalesce(sum(hash({name})), 0)::VARCHAR AS h FROM {name}"
    for name in PUBLISHED
)

Fingerprint = dict[str, tuple[int, str]]
COUNT_CHECKS = "SELECT count(*) AS n FROM quality_results"


def shown(dashboard: Dashboard) -> Fingerprint:
    response = httpx.get(f"{dashboard.url}/api/query", params={"sql": FINGERPRINT}, timeout=120)
    assert response.status_code == 200, response.text
    return {row["t"]: (row["n"], row["h"]) for row in response.json()["rows"]}


def on_disk(lake: Path) -> Fingerprint:
    """The tables' current snapshots as they are committed now (what a reader opening them naively sees)."""
    with QueryEngine(Catalog(lake)) as engine:
        return {t: (n, h) for t, n, h in engine.execute(FINGERPRINT).rows}


def start_paused_run(lake: Path, env: dict[str, str], args: list[str], point: str) -> subprocess.Popen[bytes]:
    """A real command that stops itself (SIGSTOP) at crash point `point` (after that many table commits): it
    holds the lake's lock, its publish journal is written and some of its tables are committed."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SPOTIFY_") or k == "SPOTIFY_PIPELINE_CONFIG_DIR"}
    log_path = lake.parent / "paused-run.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "spotify_pipeline", *args],
            env={**base, **env, "SPOTIFY_PIPELINE_CRASH_AT": point, "SPOTIFY_PIPELINE_CRASH_SIGNAL": "SIGSTOP"},
            stdout=log,
            stderr=log,
        )
    _, status = os.waitpid(process.pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status), log_path.read_text()
    return process


def finish(process: subprocess.Popen[bytes], lake: Path) -> None:
    os.kill(process.pid, signal.SIGCONT)
    assert process.wait(timeout=300) == 0, (lake.parent / "paused-run.log").read_text()


def kill_if_running(process: subprocess.Popen[bytes] | None) -> None:
    """A paused command a test left running (it failed before `finish`) is killed, not left behind."""
    if process is not None and process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()


@pytest.mark.parametrize(
    "command, ending",
    [("run", "finishes"), ("run", "dies"), ("rebuild", "finishes")],
)
def test_a_dashboard_opened_during_a_publish_shows_the_previous_run_whole(
    tmp_path: Path, make_simulator: SimulatorFactory, command: str, ending: str
) -> None:
    """A publish paused half-way: a dashboard opened then (its first open, then a worker killed and replaced)
    shows every table as before the run, and so does one open since before the run, which keeps its engine
    through a commit that changes no snapshot; once the publish ends (the run goes on, or a run
    that died is redone by the next transform, itself paused half-way first) both show every table as after."""
    server = make_simulator(seed=5, playlists=3, items_per_playlist=12)
    lake = tmp_path / "lake"
    env = sim_env(server, lake)
    run_args = ["run", *[a for pid in server.playlist_ids() for a in ("--playlist", pid)]]
    first = cli(*run_args, env=env)
    assert first.returncode == 0, first.stderr
    before = on_disk(lake)
    live = Dashboard(lake, "127.0.0.1", 0).start()
    assert shown(live) == before
    server.mutate([0, 1])
    if command == "rebuild":  # every table overwritten from the raw zone, the new run's raw files included
        extracted = cli("extract", *run_args[1:], env=env)
        assert extracted.returncode == 0, extracted.stderr
        run = start_paused_run(lake, env, ["transform", "--rebuild"], "transform.table_committed:7")
    else:
        run = start_paused_run(lake, env, run_args, "transform.table_committed:5")
    try:
        half = on_disk(lake)
        assert half != before  # some tables are the new run's...
        queried = cli("query", "--format", "json", FINGERPRINT, env=env)  # the CLI too (Lake.engine)
        assert queried.returncode == 0, queried.stderr
        assert {r["t"]: (r["n"], r["h"]) for r in json.loads(queried.stdout)} == before
        assert shown(live) == before
        reopens = live.engine_stats().reopens
        Catalog(lake).mark("quality_results", "serve13.test", "1")  # a commit that changes no snapshot
        assert shown(live) == before and live.engine_stats().reopens == reopens  # the engine kept, not reloaded
        dashboard = Dashboard(lake, "127.0.0.1", 0).start()  # first open, while the run holds the lock
        try:
            assert shown(dashboard) == before
            worker = dashboard.engine_stats().pid
            os.kill(worker, signal.SIGKILL)  # a worker replaced mid-publish (the OOM killer)
            while not exited(worker):
                time.sleep(0.05)
            assert shown(dashboard) == before
            assert dashboard.engine_stats().pid != worker
            if ending == "finishes":
                finish(run, lake)
            else:
                os.kill(run.pid, signal.SIGKILL)  # dies mid-publish: its journal stays, the lock is freed
                run.wait(timeout=60)
                assert shown(dashboard) == before
                run = start_paused_run(lake, env, ["transform"], "transform.table_committed:2")  # the redo
                assert shown(dashboard) == before
                finish(run, lake)
            after = on_disk(lake)
            assert after not in (before, half)  # ...and others were not yet: the lake was half-published
            assert shown(dashboard) == after
            assert shown(live) == after
        finally:
            dashboard.stop()
    finally:
        live.stop()
        kill_if_running(run)


def test_a_lock_left_by_a_run_on_another_host_does_not_freeze_the_dashboard(
    changing_lake: tuple[Path, SimulatedSpotify],  # noqa: F811 (the fixture imported above)
) -> None:
    """A run on another host (a shared disk) that died leaves a lock whose pid this host cannot check: the
    dashboard still shows tables committed since, whole."""
    lake, server = changing_lake
    dashboard = Dashboard(lake, "127.0.0.1", 0).start()
    try:
        assert newest(dashboard) == DAY.isoformat()
        leftover = {"pid": 4242, "host": "another-host.invalid", "command": "run", "started_at": "2026-11-01T09:00"}
        (lake / LOCK_NAME).write_text(json.dumps(leftover))
        expected = change_tables(lake, server, 1)
        assert newest(dashboard) == expected
    finally:
        dashboard.stop()


def test_an_unreadable_journal_does_not_stop_the_dashboard(changing_lake: tuple[Path, SimulatedSpotify]) -> None:  # noqa: F811
    """The next transform refuses a damaged publish journal and says what to do; the dashboard, a reader,
    keeps answering from the tables as they are."""
    lake, _ = changing_lake
    journal = lake / PUBLISH_JOURNAL_KEY
    journal.parent.mkdir(parents=True, exist_ok=True)
    journal.write_text('{"snapshots": ')
    dashboard = Dashboard(lake, "127.0.0.1", 0).start()
    try:
        assert newest(dashboard) == DAY.isoformat()
    finally:
        dashboard.stop()


def test_tables_that_never_settle_answer_503_then_recover(
    changing_lake: tuple[Path, SimulatedSpotify],  # noqa: F811 (the fixture imported above)
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Commits outside any publish (here a thread appending to `quality_results` in a loop) that keep moving
    a snapshot id while the dashboard reads where the tables stand: after `SPOTIFY_PIPELINE_OPEN_TRIES` reads
    (lowered to 1 so that one commit in the window is enough) it answers 503 with Retry-After 1, never a
    half-read lake; once the commits stop, the next request answers from every row committed."""
    lake, _ = changing_lake
    monkeypatch.setenv("SPOTIFY_PIPELINE_OPEN_TRIES", "1")  # the worker inherits it
    catalog = Catalog(lake)
    row = catalog.read("quality_results").slice(0, 1)
    stop = threading.Event()
    commits: list[int] = []

    def keep_committing() -> None:
        while not stop.is_set():
            catalog.append("quality_results", row)
            commits.append(1)

    dashboard = Dashboard(lake, "127.0.0.1", 0).start()
    committer = threading.Thread(target=keep_committing)
    try:
        assert newest(dashboard) == DAY.isoformat()
        committer.start()
        answers: list[httpx.Response] = []
        while len(answers) < 30 and not any(a.status_code == 503 for a in answers):
            answers.append(httpx.get(f"{dashboard.url}/api/query", params={"sql": COUNT_CHECKS}, timeout=60))
        stop.set()
        committer.join()
        refused = [a for a in answers if a.status_code != 200]
        assert refused, f"no 503 in {len(answers)} requests over {len(commits)} commits"
        assert {a.status_code for a in refused} == {503}, refused[0].text
        assert refused[0].headers["Retry-After"] == "1"
        assert "kept changing" in refused[0].json()["error"]
        assert len(commits) > 1
        recovered = httpx.get(f"{dashboard.url}/api/query", params={"sql": COUNT_CHECKS}, timeout=60)
        assert recovered.status_code == 200, recovered.text
        assert recovered.json()["rows"][0]["n"] == catalog.read("quality_results").num_rows
    finally:
        stop.set()
        if committer.is_alive():
            committer.join()
        dashboard.stop()


RUNS = "SELECT run_id, status FROM pipeline_runs ORDER BY started_at"


def runs_shown(dashboard: Dashboard) -> list[tuple[str, str]]:
    response = httpx.get(f"{dashboard.url}/api/query", params={"sql": RUNS}, timeout=120)
    assert response.status_code == 200, response.text
    return [(row["run_id"], row["status"]) for row in response.json()["rows"]]


def runs_on_disk(lake: Path) -> list[tuple[str, str]]:
    with QueryEngine(Catalog(lake)) as engine:
        return [(r, s) for r, s in engine.execute(RUNS).rows]


def test_a_runs_pipeline_runs_line_appears_with_its_tables_and_a_failed_runs_line_always(
    tmp_path: Path, make_simulator: SimulatorFactory
) -> None:
    """A run's own `pipeline_runs` line is part of its publish: paused right after the journal is gone, readers
    show its tables and its line; paused after its line's commit but before the journal is gone, neither.
    A run killed mid-publish leaves its journal: a run that fails then still shows its failure line at once
    (beside the tables as before), and the next run publishes both tables and its line."""
    server = make_simulator(seed=5, playlists=3, items_per_playlist=12)
    lake = tmp_path / "lake"
    env = sim_env(server, lake)
    run_args = ["run", *[a for pid in server.playlist_ids() for a in ("--playlist", pid)]]
    assert cli(*run_args, env=env).returncode == 0
    dashboard = Dashboard(lake, "127.0.0.1", 0).start()
    run: subprocess.Popen[bytes] | None = None
    try:
        lines = runs_on_disk(lake)
        assert runs_shown(dashboard) == lines and len(lines) == 1
        # 1. The journal just removed: the new tables and the run's line, together.
        server.mutate([0])
        run = start_paused_run(lake, env, run_args, "transform.published")
        lines = runs_on_disk(lake)
        assert len(lines) == 2 and lines[-1][1] == "succeeded"
        assert shown(dashboard) == on_disk(lake) and runs_shown(dashboard) == lines
        finish(run, lake)
        assert runs_shown(dashboard) == runs_on_disk(lake) == lines  # recorded once
        # 2. Its line committed, the journal still there: neither its tables nor its line.
        before = on_disk(lake)
        server.mutate([1])
        run = start_paused_run(lake, env, run_args, "transform.run_recorded")
        assert len(runs_on_disk(lake)) == 3 and on_disk(lake) != before
        assert shown(dashboard) == before and runs_shown(dashboard) == lines
        finish(run, lake)
        lines = runs_on_disk(lake)
        assert len(lines) == 3 and shown(dashboard) == on_disk(lake) and runs_shown(dashboard) == lines
        # 3. Killed mid-publish: a failed run's line shows at once, beside the tables as they were.
        before = on_disk(lake)
        server.mutate([2])
        run = start_paused_run(lake, env, run_args, "transform.table_committed:2")
        os.kill(run.pid, signal.SIGKILL)
        run.wait(timeout=60)
        assert runs_on_disk(lake) == lines  # killed before its line
        failed = cli("run", "--playlist", "37i9dQZF1DXnoSuchList0", env=env)
        assert failed.returncode != 0
        lines = runs_on_disk(lake)
        assert len(lines) == 4, failed.stderr
        assert len(lines) == 4 and lines[-1][1] == "failed"
        assert shown(dashboard) == before and runs_shown(dashboard) == lines
        redo = cli(*run_args, env=env)
        assert redo.returncode == 0, redo.stderr
        lines = runs_on_disk(lake)
        assert len(lines) == 5 and lines[-1][1] == "succeeded"
        assert shown(dashboard) == on_disk(lake) != before and runs_shown(dashboard) == lines
    finally:
        dashboard.stop()
        kill_if_running(run)
