"""`rejected_records` is committed inside the publish (under its journal), not before it: a reader never sees
the raw records a transform set aside beside the tables as they were before it.

A real `transform` process is paused (SIGSTOP, by its crash point) after its first table commit; the CLI's
`query` (Lake.engine: the same consistent snapshots as `serve`) reads the lake meanwhile.
"""

from __future__ import annotations

import json
from pathlib import Path

from spotify_pipeline.simulator import SimulatedSpotify

from ..conftest import cli, sim_env
from ..serve.test_consistent_open import finish, kill_if_running, start_paused_run
from .test_quarantine import first_track, raw_lines, rewrite_line, rows, two_runs  # noqa: F401 (a fixture)

SHOWN = "SELECT (SELECT count(*) FROM rejected_records) AS rejected, (SELECT max(run_id) FROM playlist_songs) AS run"


def shown(env: dict[str, str]) -> tuple[int, str]:
    result = cli("query", "--format", "json", SHOWN, env=env)
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout)[0]
    return row["rejected"], row["run"]


def test_records_set_aside_appear_with_the_tables_of_their_publish(
    two_runs: tuple[SimulatedSpotify, Path, str],  # noqa: F811 (the fixture imported above)
) -> None:
    server, lake, run_id = two_runs
    part, line, record = raw_lines(lake, run_id, "playlist_items")[0]
    track = first_track(record["body"])
    track["item"]["duration_ms"] = track["track"]["duration_ms"] = {"a": 1}
    rewrite_line(lake, part, line, record)
    env = sim_env(server, lake)
    before = shown(env)
    assert before[0] == 0 and before[1] != run_id
    paused = start_paused_run(lake, env, ["transform"], "transform.table_committed:1")
    try:
        assert rows(lake, "SELECT count(*) FROM rejected_records") == [(1,)]  # committed on disk...
        assert shown(env) == before  # ...but not shown before the publish ends
        finish(paused, lake)
    finally:
        kill_if_running(paused)
    assert shown(env) == (1, run_id)
