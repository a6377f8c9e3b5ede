"""`serve`'s query engine lives in a worker process that is replaced every `recycle_after` table changes, so
what DuckDB and the C heap keep from one reopen to the next leaves with the worker (docs/BENCHMARKS.md,
"Memory of a long-lived process"). Real simulator, real lake, real HTTP; no memory is asserted, only the
processes and connections that hold it."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from spotify_pipeline.lake.lock import LOCK_NAME, LakeLock
from spotify_pipeline.serve.dashboard import Dashboard
from spotify_pipeline.simulator import Catalog as SimCatalog
from spotify_pipeline.simulator import CatalogConfig, SimulatedSpotify

from ..reports.conftest import _extract

DAY = dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.UTC)
NEWEST = "SELECT max(extracted_at) AS newest, count(*) AS n FROM playlists"


@pytest.fixture
def changing_lake(tmp_path: Path) -> Iterator[tuple[Path, SimulatedSpotify]]:
    """A small lake and the simulator it was read from, so a test can change the tables again."""
    server = SimulatedSpotify(SimCatalog(CatalogConfig(seed=5, playlists=3, items_per_playlist=12))).start()
    try:
        _extract(server, tmp_path, DAY)
        yield tmp_path, server
    finally:
        server.stop()


def newest(dashboard: Dashboard) -> str:
    response = httpx.get(f"{dashboard.url}/api/query", params={"sql": NEWEST}, timeout=60)
    assert response.status_code == 200, response.text
    return str(response.json()["rows"][0]["newest"])


def change_tables(lake: Path, server: SimulatedSpotify, day: int) -> str:
    """One more run, on `day` days after DAY, in which a playlist changed: its `extracted_at` is the run's."""
    when = DAY + dt.timedelta(days=day)
    server.mutate([day % 3])
    time.sleep(0.01)  # the catalog file's mtime must move (the dashboard's change stamp)
    _extract(server, lake, when)
    return when.isoformat()


def exited(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/status").exists() and "zombie" in Path(f"/proc/{pid}/status").read_text()


def test_the_engine_runs_in_a_worker_replaced_every_n_changes(changing_lake: tuple[Path, SimulatedSpotify]) -> None:
    """Three table changes with `recycle_after=2`, while another client keeps asking: every answer is a 200,
    each after a change is the new snapshot's, no worker opens more than 2 engines, the workers replaced
    have exited, and each holds one DuckDB connection (the previous engine's was closed and let go)."""
    lake, server = changing_lake
    dashboard = Dashboard(lake, "127.0.0.1", 0, recycle_after=2).start()
    statuses: list[int] = []
    stop = threading.Event()

    def keep_asking() -> None:
        while not stop.is_set():
            statuses.append(httpx.get(f"{dashboard.url}/api/query", params={"sql": NEWEST}, timeout=60).status_code)
            stop.wait(0.05)

    asker = threading.Thread(target=keep_asking)
    try:
        assert newest(dashboard) == DAY.isoformat()
        first = dashboard.engine_stats()
        assert first.pid != os.getpid() and first.reopens == 1 and first.connections == 1
        pids = [first.pid]
        asker.start()
        for day in range(1, 4):
            expected = change_tables(lake, server, day)
            assert newest(dashboard) == expected  # the new snapshot's answer, whichever worker gives it
            stats = dashboard.engine_stats()
            assert 1 <= stats.reopens <= 2 and stats.connections == 1
            pids.append(stats.pid)
        # at least 4 reopens (the asker may see a run's commits one by one and cause more), 2 per worker
        assert len(set(pids)) >= 2
        assert all(exited(pid) for pid in set(pids) - {pids[-1]})
    finally:
        stop.set()
        if asker.is_alive():
            asker.join()
        dashboard.stop()
    assert exited(pids[-1])  # stop() leaves no worker behind
    assert len(statuses) > 4 and set(statuses) == {200}


def test_errors_come_back_from_the_worker_and_a_dead_worker_is_replaced(
    changing_lake: tuple[Path, SimulatedSpotify],
) -> None:
    lake, _ = changing_lake
    dashboard = Dashboard(lake, "127.0.0.1", 0).start()
    try:
        response = httpx.get(f"{dashboard.url}/api/query", params={"sql": "SELECT nope FROM songs"}, timeout=60)
        assert response.status_code == 400 and "SQL error" in response.json()["error"]
        refused = httpx.get(f"{dashboard.url}/api/query", params={"sql": "DROP TABLE songs"}, timeout=60)
        assert refused.status_code == 400 and "only read queries" in refused.json()["error"]
        for _ in range(3):
            killed = dashboard.engine_stats().pid
            os.kill(killed, signal.SIGKILL)  # as the OOM killer would, while the worker waits for a query
            # No waiting for it to die: the next query may reach it dying (its socket still open, the process
            # not yet reaped); either way it is answered by a new worker.
            assert newest(dashboard) == DAY.isoformat()
            assert dashboard.engine_stats().pid != killed
            assert exited(killed)
    finally:
        dashboard.stop()


def ask_a_stopped_worker(dashboard: Dashboard) -> tuple[int, threading.Thread, list[httpx.Response]]:
    """Stop the worker (SIGSTOP), then ask a query in a thread: it is sent and waits for an answer that
    cannot come, so a kill lands while the query is in flight. (The worker's pid, the thread, its answers.)"""
    stuck = dashboard.engine_stats().pid
    os.kill(stuck, signal.SIGSTOP)
    answers: list[httpx.Response] = []
    ask = {"sql": NEWEST}
    asking = threading.Thread(target=lambda: answers.append(httpx.get(f"{dashboard.url}/api/query", params=ask)))
    asking.start()
    time.sleep(0.5)
    assert asking.is_alive()
    return stuck, asking, answers


def test_a_query_whose_worker_dies_before_answering_is_asked_again_of_a_new_one(
    changing_lake: tuple[Path, SimulatedSpotify],
) -> None:
    """The worker can die after the dashboard saw it alive and sent it a query (the OOM killer picks the
    largest process, and the query may not be the cause). A read can be asked again: the query is answered
    by a new worker, not turned into an error. (Stopped with SIGSTOP first so the kill lands while the
    query waits for its answer.)"""
    lake, _ = changing_lake
    dashboard = Dashboard(lake, "127.0.0.1", 0).start()
    try:
        stuck, asking, answers = ask_a_stopped_worker(dashboard)
        os.kill(stuck, signal.SIGKILL)
        asking.join(60)
        assert [a.status_code for a in answers] == [200], [a.text for a in answers]
        assert answers[0].json()["rows"][0]["newest"] == DAY.isoformat()
        assert dashboard.engine_stats().pid != stuck and exited(stuck)
    finally:
        dashboard.stop()


def engine_workers() -> set[int]:
    """This process's children that are dashboard engine workers (any thread may have started them)."""
    found = set()
    for children in Path(f"/proc/{os.getpid()}/task").glob("*/children"):
        for pid in children.read_text().split():
            try:
                if b"engine_process" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    found.add(int(pid))
            except OSError:  # gone meanwhile
                continue
    return found


def test_a_query_whose_new_worker_dies_too_is_a_503_and_the_next_query_is_answered(
    changing_lake: tuple[Path, SimulatedSpotify],
) -> None:
    """A read is asked again once, not forever: when the second worker dies too (a query that the OOM killer
    takes each time), the answer is a 503 with Retry-After, and the dashboard keeps serving."""
    lake, _ = changing_lake
    dashboard = Dashboard(lake, "127.0.0.1", 0).start()
    try:
        first, asking, answers = ask_a_stopped_worker(dashboard)
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while not (second := engine_workers() - {first}) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert second, "no second worker was started"
        for pid in second:
            os.kill(pid, signal.SIGKILL)  # before it could open the engine and answer
        asking.join(60)
        assert [a.status_code for a in answers] == [503], [a.text for a in answers]
        assert answers[0].headers["Retry-After"] and "killed by signal 9" in answers[0].json()["error"]
        assert newest(dashboard) == DAY.isoformat()
    finally:
        dashboard.stop()


def test_the_lock_does_not_decide_what_is_shown(changing_lake: tuple[Path, SimulatedSpotify]) -> None:
    """What the dashboard shows follows the tables' commits and the publish journal (query/consistent.py,
    tests/serve/test_consistent_open.py: never half a publish), not the lake's lock: a run's tables are shown
    once its publish has ended, while it still holds the lock, and a lock file left behind by a run that died
    freezes nothing."""
    lake, server = changing_lake
    dashboard = Dashboard(lake, "127.0.0.1", 0).start()
    try:
        assert newest(dashboard) == DAY.isoformat()
        with LakeLock(lake, "run"):  # this test is the run; the transform below commits table by table
            expected = change_tables(lake, server, 1)
            assert newest(dashboard) == expected

        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        leftover = {"pid": int(dead.stdout), "host": socket.gethostname(), "command": "run", "started_at": "x"}
        (lake / LOCK_NAME).write_text(json.dumps(leftover))  # what a killed run leaves behind
        expected = change_tables(lake, server, 2)
        assert newest(dashboard) == expected
    finally:
        dashboard.stop()
