"""A run killed at any moment, and above all between two table commits, never stops the lake: the next run
finishes the work, and its tables equal those of runs that were never interrupted.

The scenario is the one that broke before (issue #16): a lake with history (a first run, then playlists
change), a second run killed with SIGKILL, then a third run. Its tables are compared with a lake built by
the same runs without the kill, from a simulator with the same seed and the same changes.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from spotify_pipeline.simulator import SimulatedSpotify
from spotify_pipeline.tables.contract import DATA_TABLES

from ..conftest import LakeTemplates, SimulatorFactory, cli, comparable_tables, sim_env

CATALOG = {"playlists": 6, "items_per_playlist": 70, "large_playlist_items": 420}
CHANGED = [1, 2, 3]
# Every table commit of a transform, then the bookkeeping commit after them. A playlist-only run leaves the
# user and listening tables as they are, and sees the albums' artist credits again unchanged: those tables
# are not committed again (transform/scope.py).
UNCHANGED = {"saved_songs", "plays", "user_top", "listen_events", "listens", "album_artists"}
PUBLISH_POINTS = [f"transform.table_committed:{n}" for n in range(1, len(set(DATA_TABLES) - UNCHANGED) + 1)]
POINTS = [
    "extract.page_stored:3",
    "raw.part_written:2",
    *PUBLISH_POINTS,
    "transform.tables_committed",
    "transform.published",
]
# After these, two more commands show the repaired lake goes on working.
KEEPS_WORKING = {"transform.table_committed:7", "transform.published"}
# Moments (seconds after the start of the interrupted run) at which a plain `kill -9` lands; drawn once,
# with a fixed seed so a failure can be replayed.
RANDOM_MOMENTS = sorted(round(random.Random(16).uniform(0.4, 4.0), 2) for _ in range(4))


def run_args(server: SimulatedSpotify) -> list[str]:
    return ["run", *[a for pid in server.playlist_ids() for a in ("--playlist", pid)]]


def first_run_then_change(server: SimulatedSpotify, lake: Path) -> dict[str, str]:
    env = {**sim_env(server, lake), "SPOTIFY_PIPELINE_RAW_PART_BYTES": "32768"}
    first = cli(*run_args(server), env=env)
    assert first.returncode == 0, first.stderr
    server.mutate(CHANGED)
    return env


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Tables after run, change, run: never interrupted."""
    server = SimulatedSpotify(_catalog()).start()
    try:
        lake = tmp_path_factory.mktemp("reference")
        env = first_run_then_change(server, lake)
        second = cli(*run_args(server), env=env)
        assert second.returncode == 0, second.stderr
        tables = comparable_tables(lake)
    finally:
        server.stop()
    assert tables["playlist_changes"], "the reference must exercise the change history"
    return tables


def _catalog() -> Any:
    from spotify_pipeline.simulator.catalog import Catalog
    from spotify_pipeline.simulator.generate import CatalogConfig

    return Catalog(CatalogConfig(**CATALOG))


ChangedLake = tuple[SimulatedSpotify, Path, dict[str, str]]


@pytest.fixture
def changed_lake(make_simulator: SimulatorFactory, lake_templates: LakeTemplates) -> ChangedLake:
    """Where every test here starts: a lake after a first run, and a simulator (same seed) whose playlists
    changed since, with the environment for it. The first run is made once per worker and restored into
    the folder it was made in (conftest.py LakeTemplates), not made again by each test."""

    def build(folder: Path) -> None:
        server = SimulatedSpotify(_catalog()).start()
        try:
            first_run_then_change(server, folder / "lake")
        finally:
            server.stop()

    lake = lake_templates.restore("publish-crash", build) / "lake"
    server = make_simulator(**CATALOG)
    server.mutate(CHANGED)
    return server, lake, {**sim_env(server, lake), "SPOTIFY_PIPELINE_RAW_PART_BYTES": "32768"}


@pytest.mark.parametrize("point", POINTS)
def test_a_kill_at_any_crash_point_is_repaired_by_the_next_run(
    changed_lake: ChangedLake, reference: dict[str, Any], point: str
) -> None:
    server, lake, env = changed_lake
    killed = cli(*run_args(server), env={**env, "SPOTIFY_PIPELINE_CRASH_AT": point})
    assert killed.returncode == -9, (point, killed.returncode, killed.stderr[-2000:])
    rerun = cli(*run_args(server), env=env)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert comparable_tables(lake) == reference
    if point in KEEPS_WORKING:  # and the lake keeps working afterwards (the same code path for every point)
        again = cli(*run_args(server), env=env)
        assert again.returncode == 0, again.stdout + again.stderr
        assert comparable_tables(lake) == reference
        assert cli("check", env=env).returncode == 0


@pytest.mark.parametrize("moment", RANDOM_MOMENTS)
def test_a_kill_at_a_random_moment_is_repaired_by_the_next_run(
    changed_lake: ChangedLake, reference: dict[str, Any], moment: float
) -> None:
    server, lake, env = changed_lake
    base = {k: v for k, v in os.environ.items() if not k.startswith("SPOTIFY_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "spotify_pipeline", *run_args(server)],
        env={**base, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        process.wait(timeout=moment)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    time.sleep(0.05)
    rerun = cli(*run_args(server), env=env)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert comparable_tables(lake) == reference


def test_a_catalog_commit_killed_half_way_is_rolled_back_by_the_next_command(
    changed_lake: ChangedLake,
) -> None:
    """SIGKILL inside an SQLite commit of catalog.db leaves a hot journal: the next connection must be able to
    roll it back (a read-only one cannot: 'attempt to write a readonly database'). Made here on purpose: a
    process changes every catalog row with a one-page cache, so pages reach the file before the commit, and
    dies holding the transaction."""
    server, lake, env = changed_lake
    before = comparable_tables(lake)
    code = (
        "import os, sqlite3, sys\n"
        "con = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "con.execute('PRAGMA cache_size = 1')\n"
        "con.execute('BEGIN')\n"
        "con.execute(\"UPDATE iceberg_tables SET metadata_location = metadata_location || '-torn'\")\n"
        "con.execute('CREATE TABLE filler AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
        "WHERE i < 20000) SELECT i, randomblob(200) AS b FROM n')\n"
        "os.kill(os.getpid(), 9)\n"
    )
    died = subprocess.run([sys.executable, "-c", code, str(lake / "catalog.db")], capture_output=True)
    assert died.returncode == -9
    assert (lake / "catalog.db-journal").exists(), "the kill left a hot journal"
    query = cli("query", "SELECT count(*) FROM playlists", env=env)
    assert query.returncode == 0, query.stdout + query.stderr
    assert comparable_tables(lake) == before
    rerun = cli(*run_args(server), env=env)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
