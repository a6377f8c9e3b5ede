"""DuckDB spills to disk under the lake's own `_state/` (never the working directory or a shared /tmp folder),
and the spill folder is gone once the connection closes. A real lake, a real query that spills."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from spotify_pipeline.query.engine import QueryEngine
from spotify_pipeline.simulator import SimulatedSpotify
from spotify_pipeline.tables.catalog import Catalog

from ..conftest import cli, sim_env

# More distinct 32-character strings than fit in 64 MB: DuckDB must spill to finish the sort.
SPILLING_SQL = "SELECT count(*) FROM (SELECT md5(range::VARCHAR) AS h FROM range(1500000) ORDER BY h DESC)"


def playlists(server: SimulatedSpotify) -> list[str]:
    return [arg for pid in server.playlist_ids()[:2] for arg in ("--playlist", pid)]


def test_a_query_spills_under_the_lakes_state_and_cleans_up(
    simulator: SimulatedSpotify, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake, work = tmp_path / "lake", tmp_path / "work"
    work.mkdir()
    done = cli("run", *playlists(simulator), env=sim_env(simulator, lake), cwd=work)
    assert done.returncode == 0, done.stderr
    assert list(work.iterdir()) == []
    monkeypatch.chdir(work)
    before = set(os.listdir(lake / "_state"))
    with QueryEngine(Catalog(lake), memory_limit="64MB") as engine:
        assert engine.execute(SPILLING_SQL).rows == [(1500000,)]
        spilled = set(os.listdir(lake / "_state")) - before
        assert spilled and all(name.startswith("duckdb-spill-") for name in spilled), spilled
    assert set(os.listdir(lake / "_state")) == before  # the spill folder went with the connection
    assert list(work.iterdir()) == []  # nothing in the working directory


def test_a_transform_leaves_nothing_behind(simulator: SimulatedSpotify, tmp_path: Path) -> None:
    lake, work = tmp_path / "lake", tmp_path / "work"
    work.mkdir()
    env = {**sim_env(simulator, lake), "SPOTIFY_PIPELINE_MEMORY_LIMIT": "256MB"}
    for args in (("run", *playlists(simulator)), ("transform", "--rebuild")):
        done = cli(*args, env=env, cwd=work)
        assert done.returncode == 0, done.stderr
    assert list(work.iterdir()) == []
    assert not [p for p in (lake / "_state").iterdir() if p.name.startswith("duckdb-spill-")]
