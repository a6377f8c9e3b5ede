"""A history import publishes as a run does: under the publish journal, so a reader never sees half of it, and
an import that dies half-way is finished by whatever comes next on the lake: the same import again, or a run.

A real `import-history` process is paused (SIGSTOP, by its own crash point) after some of its table commits,
so the lake on disk really is half-imported while the CLI and a dashboard read it (real HTTP); tables are
compared through fingerprints (rows and a sum of row hashes) with the lake before the import and after it.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from spotify_pipeline.lake.layout import PUBLISH_JOURNAL_KEY
from spotify_pipeline.serve.dashboard import Dashboard
from spotify_pipeline.simulator.history import write_export

from ..conftest import SimulatorFactory, cli, sim_env
from ..serve.test_consistent_open import FINGERPRINT, finish, kill_if_running, on_disk, shown, start_paused_run

USER = "alice"
LISTENS = "SELECT count(*) AS n FROM listens"


@pytest.mark.parametrize("ending", ["finishes", "imported again", "run"])
def test_a_reader_never_sees_half_an_import_and_the_next_command_finishes_one_that_died(
    tmp_path: Path, make_simulator: SimulatorFactory, ending: str
) -> None:
    """An import paused after two of its table commits (songs, listen_events; listens not yet): the CLI and a
    dashboard show every table as before it. It goes on, or it is killed there (its journal stays; readers
    still show before) and then the same download is imported again, which finds nothing new to import but
    finishes the publish, or a `run` finishes it; either way readers then show every table with the
    import's listens, and no journal is left."""
    server = make_simulator(seed=5, playlists=3, items_per_playlist=12)
    lake = tmp_path / "lake"
    env = sim_env(server, lake)
    run_args = ["run", *[a for pid in server.playlist_ids() for a in ("--playlist", pid)]]
    first = cli(*run_args, env=env)
    assert first.returncode == 0, first.stderr
    export = write_export(server.catalog, USER, tmp_path / "my_spotify_data.zip", plays=60)
    before = on_disk(lake)
    assert before["listens"][0] == 0
    dashboard = Dashboard(lake, "127.0.0.1", 0).start()
    importing = start_paused_run(
        lake, env, ["import-history", str(export.path), "--user", USER], "transform.table_committed:2"
    )
    try:
        half = on_disk(lake)
        assert half != before and half["listens"] == before["listens"]  # half-imported on disk
        queried = cli("query", "--format", "json", FINGERPRINT, env=env)
        assert queried.returncode == 0, queried.stderr
        assert {r["t"]: (r["n"], r["h"]) for r in json.loads(queried.stdout)} == before
        assert shown(dashboard) == before
        if ending == "finishes":
            finish(importing, lake)
        else:
            os.kill(importing.pid, signal.SIGKILL)
            importing.wait(timeout=60)
            assert (lake / PUBLISH_JOURNAL_KEY).exists()
            assert shown(dashboard) == before
            if ending == "run":
                again = cli(*run_args, env=env)
            else:
                again = cli("import-history", str(export.path), "--user", USER, env=env)
                assert "nothing new to import" in again.stdout
            assert again.returncode == 0, again.stderr
        after = on_disk(lake)
        assert not (lake / PUBLISH_JOURNAL_KEY).exists()
        assert after["listens"][0] > 0 and after not in (before, half)
        assert shown(dashboard) == after
    finally:
        dashboard.stop()
        kill_if_running(importing)


def test_an_import_killed_before_its_publish_is_finished_by_importing_it_again(
    tmp_path: Path, make_simulator: SimulatorFactory
) -> None:
    """An import killed after writing its raw run, before its publish began (no journal yet): importing the
    same download again finds nothing new to import, and publishes the plays the killed import left
    (before, they waited for some later `run`); a third import then has nothing to do at all."""
    server = make_simulator(seed=5, playlists=3, items_per_playlist=12)
    lake = tmp_path / "lake"
    env = sim_env(server, lake)
    export = write_export(server.catalog, USER, tmp_path / "my_spotify_data.zip", plays=60)
    command = ["import-history", str(export.path), "--user", USER]
    killed = cli(*command, env={**env, "SPOTIFY_PIPELINE_CRASH_AT": "history.raw_run_written"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (lake / PUBLISH_JOURNAL_KEY).exists()  # killed before its publish began
    again = cli(*command, env=env)
    assert again.returncode == 0, again.stderr
    assert "nothing new to import" in again.stdout and "published raw run" in again.stdout
    listens = cli("query", "--format", "json", LISTENS, env=env)
    assert listens.returncode == 0, listens.stderr
    assert json.loads(listens.stdout)[0]["n"] > 0
    third = cli(*command, env=env)
    assert third.returncode == 0, third.stderr
    assert "nothing new to import" in third.stdout and "published" not in third.stdout
